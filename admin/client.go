// SPDX-License-Identifier: Apache-2.0

package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Client speaks the director-admin protocol to a running Dovecot 2.3
// Director (its director-admin socket), the way doveadm does: for
// comparing its placements with maildirector's before a switch-over
// (maildirector director diff).
type Client struct {
	conn net.Conn
	r    *bufio.Reader
}

// DialDirector connects to a Director's director-admin socket and
// exchanges the version lines.
func DialDirector(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	c := &Client{conn: conn, r: bufio.NewReaderSize(conn, 64*1024)}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(time.Minute))
	}
	if _, err := conn.Write([]byte(handshake)); err != nil {
		conn.Close()
		return nil, err
	}
	line, err := c.line()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: no version line: %w", path, err)
	}
	if !checkHandshake(line) {
		conn.Close()
		return nil, fmt.Errorf("%s: not a director-admin socket (it said %q)", path, line)
	}
	return c, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) line() (string, error) {
	s, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

func (c *Client) send(fields ...string) error {
	for i, f := range fields {
		fields[i] = tabEscape(f)
	}
	_, err := c.conn.Write([]byte(strings.Join(fields, "\t") + "\n"))
	return err
}

// DirectorHost is a backend as the Director lists it (HOST-LIST).
type DirectorHost struct {
	IP     string
	VHosts int
	Users  int
	Tag    string
	Down   bool
}

// HostList lists the Director's backends.
func (c *Client) HostList() ([]DirectorHost, error) {
	if err := c.send("HOST-LIST"); err != nil {
		return nil, err
	}
	var out []DirectorHost
	for {
		l, err := c.line()
		if err != nil {
			return nil, fmt.Errorf("HOST-LIST: %w", err)
		}
		if l == "" {
			return out, nil
		}
		f := strings.Split(l, "\t")
		if len(f) < 3 {
			return nil, fmt.Errorf("HOST-LIST: line %q", l)
		}
		h := DirectorHost{IP: f[0]}
		h.VHosts, _ = strconv.Atoi(f[1])
		h.Users, _ = strconv.Atoi(f[2])
		if len(f) > 3 {
			h.Tag = TabUnescape(f[3])
		}
		if len(f) > 4 {
			h.Down = f[4] == "D"
		}
		out = append(out, h)
	}
}

// DirectorUser is where the Director has a user (USER-LOOKUP).
type DirectorUser struct {
	// Current is the live assignment ("" for none) and Expires its end.
	Current string
	Expires time.Time
	// Hashed is where the Director's ring puts the user now.
	Hashed string
}

// ErrTryAgain is the Director's TRYAGAIN (it could not answer now).
var ErrTryAgain = errors.New("the Director said TRYAGAIN")

// UserLookup asks where user (in backend group tag) is.
func (c *Client) UserLookup(user, tag string) (DirectorUser, error) {
	args := []string{"USER-LOOKUP", user}
	if tag != "" {
		args = append(args, tag)
	}
	if err := c.send(args...); err != nil {
		return DirectorUser{}, err
	}
	l, err := c.line()
	if err != nil {
		return DirectorUser{}, fmt.Errorf("USER-LOOKUP %s: %w", user, err)
	}
	if l == "TRYAGAIN" {
		return DirectorUser{}, ErrTryAgain
	}
	f := strings.Split(l, "\t")
	if len(f) < 3 {
		return DirectorUser{}, fmt.Errorf("USER-LOOKUP %s: reply %q", user, l)
	}
	u := DirectorUser{Current: f[0], Hashed: f[2]}
	if ts, err := strconv.ParseInt(f[1], 10, 64); err == nil && ts > 0 {
		u.Expires = time.Unix(ts, 0)
	}
	return u, nil
}

// DirectorAssignment is one live assignment the Director lists
// (USER-LIST): it knows users by hash only.
type DirectorAssignment struct {
	Hash uint32
	// Timestamp is the time the Director sends with it (its last
	// refresh; the assignment lasts director_user_expire from then).
	Timestamp time.Time
	Host      string
}

// UserList lists the Director's live assignments.
func (c *Client) UserList() ([]DirectorAssignment, error) {
	if err := c.send("USER-LIST"); err != nil {
		return nil, err
	}
	var out []DirectorAssignment
	for {
		l, err := c.line()
		if err != nil {
			return nil, fmt.Errorf("USER-LIST: %w", err)
		}
		if l == "" {
			return out, nil
		}
		f := strings.Split(l, "\t")
		if len(f) < 3 {
			return nil, fmt.Errorf("USER-LIST: line %q", l)
		}
		h, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("USER-LIST: line %q", l)
		}
		a := DirectorAssignment{Hash: uint32(h), Host: f[2]}
		if ts, err := strconv.ParseInt(f[1], 10, 64); err == nil {
			a.Timestamp = time.Unix(ts, 0)
		}
		out = append(out, a)
	}
}
