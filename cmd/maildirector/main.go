// SPDX-License-Identifier: Apache-2.0

// Command maildirector is the one binary: the gateway (serve) and its
// tools, like doveadm.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `usage: maildirector <command> [flags]

commands:
  serve -c FILE          run the gateway
  config check -c FILE   load and validate FILE, then exit
  config import [-o FILE] [--dump FILE] [--root DIR] DOVECOT.CONF
                         translate a Dovecot 2.3 Director configuration into this YAML;
                         what is not translated goes to standard error with file:line and why
  reload [-c FILE]       make the gateway serving FILE re-read and apply its configuration
                         (through admin.socket, else admin.listen); exit 1 if it was refused
  version                print the version
  pw [-s SCHEME] [-p PASSWORD] [-u USER] [-r ROUNDS] [-t HASH] | pw -l
                         make or check a password hash, like doveadm pw
  auth test [-c FILE] [-x key=value]... [-M MASTER] [--json] USER [PASSWORD]
                         run the passdb chain like a login (password from stdin if not given)
  auth lookup [-c FILE] [-x key=value]... [--json] USER
                         look USER up in the passdb chain, without a password
  user lookup [-c FILE] [-x key=value]... [--json] USER
                         look USER up in the userdb chain
  director map [-c FILE] [-x key=value]... [--json] USER
                         which backend USER goes to, and why (pinned, sticky or hashed)
  director status [-c FILE] [--json]
                         the backends in the director store, their state and users
  director add [-c FILE] [-t TAG] HOST[@TAG] [VHOSTS]
  director update [-c FILE] HOST VHOSTS
  director up|down|remove [-c FILE] [--timeout D] HOST
  director flush [-c FILE] [--timeout D] HOST|all
                         change the backends cluster-wide; down, remove and flush
                         end the moved users' sessions on every gateway first
  director drain [-c FILE] [--kick-after D] [--timeout D] [--json] HOST
                         no new users for HOST; wait until no gateway serves it
                         (move the rest after --kick-after); exit 75 on --timeout
  director undrain [-c FILE] HOST
  director kick [-c FILE] [-t TAG] USER
  director move [-c FILE] [-t TAG] USER HOST
  director tag [-c FILE] HOST TAG   put HOST in backend group TAG ("" for none);
                         its users are moved away first
  director diff [-c FILE] [--json] --dovecot SOCKET [USERS-FILE|-]
                         compare a live Dovecot 2.3 Director's placements (its
                         director-admin socket) with this cluster's; exit 1 on differences

The lookup tools exit 0 for OK, 1 when the databases said no, 75 when one
could not answer (temporary), 70 on an internal failure, 2 on usage errors.
-x takes service, rip, rport, lip, lport, mech, session, secured.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return cmdServe(args[1:], stderr)
	case "config":
		if len(args) >= 2 && args[1] == "import" {
			return cmdConfigImport(args[2:], stdout, stderr)
		}
		if len(args) < 2 || args[1] != "check" {
			fmt.Fprint(stderr, usage)
			return 2
		}
		return cmdConfigCheck(args[2:], stdout, stderr)
	case "reload":
		return cmdReload(args[1:], stdout, stderr)
	case "pw":
		return cmdPw(args[1:], stdout, stderr)
	case "auth":
		return cmdAuth(args[1:], os.Stdin, stdout, stderr)
	case "user":
		return cmdUser(args[1:], stdout, stderr)
	case "director":
		if len(args) > 1 {
			switch args[1] {
			case "diff":
				return cmdDirectorDiff(args[2:], stdout, stderr)
			case "status", "add", "update", "up", "down", "remove", "flush", "drain", "undrain", "kick", "move", "tag":
				return cmdDirectorHosts(args[1], args[2:], stdout, stderr)
			}
		}
		return cmdDirector(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "maildirector", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "maildirector: unknown command %q\n%s", args[0], usage)
	return 2
}
