// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/maildirector/maildirector/password"
)

// cmdPw is `maildirector pw`, doveadm pw's twin, so that an administrator
// can make and check password hashes on a host without Dovecot.
func cmdPw(args []string, stdout, stderr io.Writer) int {
	return runPw(args, os.Stdin, stdout, stderr)
}

// runPw takes stdin as a parameter for tests. Exit codes: 0 done or
// verified, 1 password mismatch, 2 usage error or a hash that cannot be
// checked.
func runPw(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	list := fs.Bool("l", false, "list the supported schemes")
	scheme := fs.String("s", "CRYPT", "scheme, optionally with a .HEX or .B64 suffix; with -t, the scheme of a hash without {SCHEME}")
	plain := fs.String("p", "", "the password (default: one line read from stdin)")
	user := fs.String("u", "", "user name; DIGEST-MD5 hashes user@realm")
	rounds := fs.Int("r", 0, "cost: rounds, iterations or bcrypt cost (default: Dovecot's)")
	test := fs.String("t", "", "verify this hash against the password instead of making one")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "maildirector pw: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *list {
		fmt.Fprintln(stdout, strings.Join(password.Schemes(), " "))
		return 0
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "p" })
	if !given {
		line, err := readPassword(stdin)
		if err != nil {
			fmt.Fprintf(stderr, "maildirector pw: %v\n", err)
			return 2
		}
		*plain = line
	}
	p := password.Params{User: *user, Rounds: *rounds, DefaultScheme: *scheme}

	if *test != "" {
		ok, err := password.Verify(*test, *plain, p)
		switch {
		case err != nil:
			fmt.Fprintf(stderr, "maildirector pw: %v\n", err)
			return 2
		case !ok:
			fmt.Fprintln(stderr, "maildirector pw: password mismatch")
			return 1
		}
		fmt.Fprintln(stdout, *test, "(verified)")
		return 0
	}
	h, err := password.Generate(*scheme, *plain, p)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector pw: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, h)
	return 0
}

// readPassword reads one line, without its line ending. There is no prompt
// and no echo control: pipe the password in, or use -p.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || line == "") {
		return "", fmt.Errorf("no password on stdin (use -p or pipe one line)")
	}
	return strings.TrimRight(line, "\r\n"), nil
}
