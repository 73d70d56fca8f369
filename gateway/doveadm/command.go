// SPDX-License-Identifier: Apache-2.0

package doveadm

import (
	"net/netip"
	"strings"
)

// command is one parsed command line: <flags> <user> <command> <args…>.
type command struct {
	flags, user, name string
	args              []string
}

// parseCommand splits a command line. A line Dovecot's server would end
// the connection for (fewer than three fields, an unknown flag) gives a
// reason and no command.
func parseCommand(line string) (*command, string) {
	f := splitLine(line)
	if len(f) < 3 {
		return nil, "doveadm client: No command given"
	}
	for _, fl := range f[0] {
		if fl != 'D' && fl != 'v' {
			return nil, "doveadm client: Unknown flag: " + string(fl)
		}
	}
	return &command{flags: f[0], user: f[1], name: f[2], args: f[3:]}, ""
}

// line is the command line to send the backend, for user.
func (c *command) line(user string) string {
	return joinLine(append([]string{c.flags, user, c.name}, c.args...))
}

// hasNUL reports a NUL byte in a field: Dovecot's C strings would end the
// field there, so the backend would act on a different user or argument
// than the one routed.
func (c *command) hasNUL() bool {
	if strings.ContainsRune(c.flags+c.user+c.name, 0) {
		return true
	}
	for _, a := range c.args {
		if strings.ContainsRune(a, 0) {
			return true
		}
	}
	return false
}

// serverWide lists the commands (and command groups, by their first
// word) that act on a doveadm server as a whole rather than on one user's
// mail: behind the gateway there is no single server they could mean, so
// they are refused — run them against the backends themselves. dsync-server
// turns the connection into a dsync stream, which is not relayed.
var serverWide = []string{
	"auth", "config", "dict", "director", "dsync-server", "dump", "exec", "fs",
	"help", "indexer", "instance", "log", "mailbox mutf7", "oldstats", "penalty",
	"process", "proxy", "pw", "reload", "replicator", "service", "sis", "stats",
	"stop", "user", "who", "zlibconnect",
}

func isServerWide(name string) bool {
	for _, w := range serverWide {
		if name == w || strings.HasPrefix(name, w+" ") {
			return true
		}
	}
	return false
}

// kickUser finds whom a kick is for: `kick [-a path] [-f] <user> [<ip/bits>…]`
// (doveadm-kick.c, doveadm-who.c: one user mask, any number of IP
// ranges). It returns the user and the index of its argument, or -1 when
// the masks name no single user: kicking by IP alone or by a wildcard
// would mean every backend.
func kickUser(args []string) (string, int) {
	user, at := "", -1
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			for j := i + 1; j < len(args); j++ {
				if !kickMask(args[j], &user, &at, j) {
					return "", -1
				}
			}
			break
		}
		if len(a) > 1 && a[0] == '-' {
			// getopt: -f, -a <path>, -a<path>, -fa <path>.
			if k := strings.IndexByte(a, 'a'); k >= 0 && k == len(a)-1 {
				i++
			}
			continue
		}
		if !kickMask(a, &user, &at, i) {
			return "", -1
		}
	}
	return user, at
}

// kickMask takes one mask: an IP range is fine, a second user mask or a
// wildcard is not.
func kickMask(m string, user *string, at *int, i int) bool {
	if _, err := netip.ParsePrefix(m); err == nil {
		return true
	}
	if _, err := netip.ParseAddr(m); err == nil {
		return true
	}
	if m == "" || *user != "" || strings.ContainsAny(m, "*?") {
		return false
	}
	*user, *at = m, i
	return true
}
