// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"time"
)

// The load generator's clients: a line at a time over bufio, as little
// work as a client can do, so that the box's CPU goes to the servers.

// ioTimeout bounds every connection of the bench: a server that stops
// answering fails the login instead of hanging the run.
const ioTimeout = 30 * time.Second

// conn is one client connection.
type conn struct {
	c net.Conn
	r *bufio.Reader
}

// dial connects from source address number src (127.0.1.1, 127.0.1.2 ...:
// the clients come from many addresses, as a site's do); implicit TLS when
// useTLS.
func dial(addr string, src int, useTLS bool) (*conn, error) {
	ip := net.IPv4(127, byte(1+(src/250)%250), byte(1+src%250), 0)
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if useTLS {
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
		c.SetDeadline(time.Now().Add(ioTimeout))
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		c = tc
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	return &conn{c: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

func (c *conn) close() { c.c.Close() }

// extend moves the connection's deadline on (long transfers).
func (c *conn) extend() { c.c.SetDeadline(time.Now().Add(ioTimeout)) }

func (c *conn) send(line string) error {
	_, err := c.c.Write([]byte(line + "\r\n"))
	return err
}

func (c *conn) line() (string, error) {
	s, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

// untilTagged reads IMAP lines up to the one tagged tag and returns it
// without the tag.
func (c *conn) untilTagged(tag string) (string, error) {
	for {
		l, err := c.line()
		if err != nil {
			return "", err
		}
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return rest, nil
		}
	}
}

// expectStatus reads a reply whose status line starts with want.
func (c *conn) expectStatus(what, want string) error {
	l, err := c.line()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !strings.HasPrefix(l, want) {
		return fmt.Errorf("%s: %q", what, l)
	}
	return nil
}

// imapCmd sends a tagged command and wants its OK.
func (c *conn) imapCmd(tag, cmd string) error {
	if err := c.send(tag + " " + cmd); err != nil {
		return err
	}
	st, err := c.untilTagged(tag)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if !strings.HasPrefix(st, "OK") {
		return fmt.Errorf("%s: %q", strings.Fields(cmd)[0], st)
	}
	return nil
}

func quote(s string) string { return `"` + s + `"` }

// protocol is a login dialogue: greeting, login (timed on its own), logout.
type protocol struct {
	greeting func(c *conn) error
	login    func(c *conn, user, pass string) error
	logout   func(c *conn) error
}

var protocols = map[string]protocol{
	"imap": {
		greeting: func(c *conn) error { return c.expectStatus("greeting", "* OK") },
		login: func(c *conn, user, pass string) error {
			return c.imapCmd("a", "LOGIN "+quote(user)+" "+quote(pass))
		},
		logout: func(c *conn) error { return c.imapCmd("z", "LOGOUT") },
	},
	"pop3": {
		greeting: func(c *conn) error { return c.expectStatus("greeting", "+OK") },
		login: func(c *conn, user, pass string) error {
			if err := c.send("USER " + user); err != nil {
				return err
			}
			if err := c.expectStatus("USER", "+OK"); err != nil {
				return err
			}
			if err := c.send("PASS " + pass); err != nil {
				return err
			}
			return c.expectStatus("PASS", "+OK")
		},
		logout: func(c *conn) error {
			if err := c.send("QUIT"); err != nil {
				return err
			}
			return c.expectStatus("QUIT", "+OK")
		},
	},
	"sieve": {
		// RFC 5804: the greeting is the capabilities, then OK.
		greeting: func(c *conn) error { return c.sieveStatus("greeting") },
		login: func(c *conn, user, pass string) error {
			ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
			if err := c.send(`AUTHENTICATE "PLAIN" ` + quote(ir)); err != nil {
				return err
			}
			return c.sieveStatus("AUTHENTICATE")
		},
		logout: func(c *conn) error {
			if err := c.send("LOGOUT"); err != nil {
				return err
			}
			return c.sieveStatus("LOGOUT")
		},
	},
}

// sieveStatus reads ManageSieve lines up to the status response; OK wanted.
func (c *conn) sieveStatus(what string) error {
	for {
		l, err := c.line()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		switch {
		case strings.HasPrefix(l, "OK"):
			return nil
		case strings.HasPrefix(l, "NO"), strings.HasPrefix(l, "BYE"):
			return fmt.Errorf("%s: %q", what, l)
		}
	}
}

// loginTimes are one login's round trip of the login command(s) and the
// time from the start of connect to the login's OK.
type loginTimes struct{ login, whole time.Duration }

// oneLogin connects, reads the greeting, logs in and out, and closes.
func oneLogin(proto, addr string, src int, user string) (loginTimes, error) {
	p := protocols[proto]
	start := time.Now()
	c, err := dial(addr, src, false)
	if err != nil {
		return loginTimes{}, err
	}
	defer c.close()
	if err := p.greeting(c); err != nil {
		return loginTimes{}, err
	}
	sent := time.Now()
	if err := p.login(c, user, password(user)); err != nil {
		return loginTimes{}, err
	}
	done := time.Now()
	if err := p.logout(c); err != nil {
		return loginTimes{}, err
	}
	return loginTimes{login: done.Sub(sent), whole: done.Sub(start)}, nil
}

// imapSession logs in over IMAP (implicit TLS when useTLS) and selects
// INBOX; the caller closes it.
func imapSession(addr string, src int, useTLS bool, user string) (*conn, error) {
	c, err := dial(addr, src, useTLS)
	if err != nil {
		return nil, err
	}
	p := protocols["imap"]
	err = p.greeting(c)
	if err == nil {
		err = p.login(c, user, password(user))
	}
	if err == nil {
		err = c.imapCmd("s", "SELECT INBOX")
	}
	if err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}
