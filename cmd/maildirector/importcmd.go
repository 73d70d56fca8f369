// SPDX-License-Identifier: Apache-2.0

package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/maildirector/maildirector/dovecotconf"
)

const importUsage = `usage: maildirector config import [-o FILE] [--dump FILE] [--root DIR] DOVECOT.CONF

Translates a Dovecot 2.3 Director configuration (dovecot.conf with its
includes) into maildirector's YAML: to standard output, or to FILE with -o.
What is not translated is listed on standard error, with file, line and why.

  -o FILE       write the YAML to FILE instead of standard output
  --dump FILE   the output of "doveadm director dump" on a running Director:
                its backends, tags and vhost counts replace director_mail_servers'
  --root DIR    read a copy of another machine's files: DIR/etc/dovecot/...
                (paths in the output stay those of that machine)
`

// cmdConfigImport is "maildirector config import". Exit status: 0 when
// the YAML was written (notes or not), 1 when the configuration could
// not be read, 2 on usage errors.
func cmdConfigImport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("config import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, importUsage) }
	out := fs.String("o", "", "write the YAML to `FILE`")
	dump := fs.String("dump", "", "doveadm director dump output")
	root := fs.String("root", "", "read files under `DIR`")
	// Flags may follow the file name, as in "config import dovecot.conf -o x.yaml".
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) != 1 {
		fs.Usage()
		return 2
	}
	var opt dovecotconf.TranslateOptions
	if *dump != "" {
		data, err := os.ReadFile(*dump)
		if err != nil {
			fmt.Fprintf(stderr, "maildirector: %v\n", err)
			return 1
		}
		opt.Dump, opt.DumpName = string(data), *dump
	}
	res, err := dovecotconf.Import(files[0], dovecotconf.Options{Root: *root}, opt)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return 1
	}
	counts := map[dovecotconf.Kind]int{}
	for _, n := range res.Notes {
		fmt.Fprintln(stderr, n)
		counts[n.Kind]++
	}
	if *out != "" {
		if err := os.WriteFile(*out, res.YAML, 0o640); err != nil {
			fmt.Fprintf(stderr, "maildirector: %v\n", err)
			return 1
		}
	} else if _, err := stdout.Write(res.YAML); err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "config import: %d settings not translated (%d not needed, %d not supported, %d need a decision)",
		len(res.Notes), counts[dovecotconf.NotNeeded], counts[dovecotconf.NotSupported], counts[dovecotconf.NeedsDecision])
	if *out != "" {
		fmt.Fprintf(stderr, "; wrote %s", *out)
	}
	fmt.Fprintln(stderr, "; check it with: maildirector config check -c FILE")
	return 0
}
