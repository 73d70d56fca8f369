// SPDX-License-Identifier: Apache-2.0

package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Socket serves Dovecot 2.3's director-admin protocol on a UNIX socket:
// what `doveadm director … -a PATH` and poolmon speak. Commands on one
// connection run one after the other; a command whose client went away
// still runs to its end, and so do the commands it had already sent
// (poolmon writes HOST-DOWN and HOST-FLUSH and hangs up).
type Socket struct {
	Path string
	// Mode is the socket's permission bits (0: 0600, as Dovecot's).
	Mode os.FileMode
	Ops  Ops
	Log  *slog.Logger
	// OpTimeout bounds one command; moves wait for every gateway to end
	// the moved users' sessions (0: 2 minutes). A move still running then
	// goes on in the store; the command answers that it did not finish.
	OpTimeout time.Duration
	// IdleTimeout closes a connection that sends nothing (0: 10 minutes).
	IdleTimeout time.Duration
	// Reload, when set, serves RELOAD (maildirector's own command, not
	// Dovecot's): re-read the configuration and apply it.
	Reload Reloader

	now   func() time.Time // tests
	ln    *net.UnixListener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// maxSocketConns bounds the connections served at once.
const maxSocketConns = 64

// MaxSocketPath is the longest socket path Listen accepts: the socket is
// made in a private directory next to it first (".adm" and up to ten
// digits, then "/s"), and a UNIX socket path has at most 107 bytes.
const MaxSocketPath = 107 - len("/.adm0123456789/s")

// Listen creates the socket. It is made with its final mode in a private
// directory and renamed into place, so that nobody else can connect in
// between. A stale socket left by an earlier run is replaced; one that
// answers (another process serves it) or anything that is not a socket
// is an error.
func (s *Socket) Listen() error {
	path := s.Path
	if !filepath.IsAbs(path) {
		return fmt.Errorf("admin socket %q: not an absolute path", path)
	}
	if len(filepath.Dir(path))+len("/.adm0123456789/s") > 107 || len(path) > 107 {
		return fmt.Errorf("admin socket %s: the path is too long for a UNIX socket", path)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("admin socket %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("admin socket %s is served by another process", path)
		}
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".adm")
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	mode := s.Mode
	if mode == 0 {
		mode = 0o600
	}
	if err := os.Chmod(tmp, mode); err != nil {
		ln.Close()
		return fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return fmt.Errorf("admin socket: %w", err)
	}
	s.ln = ln
	s.log().Info("listening", "service", "director-admin", "address", path, "mode", fmt.Sprintf("%#o", mode))
	return nil
}

func (s *Socket) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// Serve accepts connections until ctx is done, then closes the socket
// (removing its file) and every connection, and returns once their
// commands ended. Listen must have succeeded.
func (s *Socket) Serve(ctx context.Context) {
	svc := &service{ops: s.Ops, now: s.now}
	s.mu.Lock()
	s.conns = map[net.Conn]struct{}{}
	s.mu.Unlock()
	var once sync.Once
	shutdown := func() {
		once.Do(func() {
			s.ln.Close()
			os.Remove(s.Path)
			s.mu.Lock()
			for c := range s.conns {
				c.Close()
			}
			s.mu.Unlock()
		})
	}
	stop := context.AfterFunc(ctx, shutdown)
	defer stop()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.log().Error("admin socket: accept", "reason", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			break
		}
		s.mu.Lock()
		if len(s.conns) >= maxSocketConns || ctx.Err() != nil {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			by := "admin-socket"
			if p := peerName(c); p != "" {
				by += ":" + p
			}
			s.serveConn(ctx, svc, c, by)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
	shutdown()
	s.wg.Wait()
}

// errLineTooLong: a command longer than maxLine.
var errLineTooLong = errors.New("command line too long")

// readLine reads one line without its LF (and a CR before it), as
// Dovecot's i_stream_read_next_line does; a last line without LF is not a
// line.
func readLine(r *bufio.Reader) (string, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxLine+1 {
			return "", errLineTooLong
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
	line := buf[:len(buf)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return string(line), nil
}

// serveConn speaks the protocol on one connection; by names the client.
func (s *Socket) serveConn(ctx context.Context, svc *service, c net.Conn, by string) {
	idle := s.IdleTimeout
	if idle == 0 {
		idle = 10 * time.Minute
	}
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	// A client that already left may still have sent commands: read on.
	io.WriteString(c, handshake)
	r := bufio.NewReaderSize(c, 4096)
	c.SetReadDeadline(time.Now().Add(idle))
	line, err := readLine(r)
	if err != nil {
		return
	}
	if !checkHandshake(line) {
		s.log().Warn("admin socket: doveadm not compatible with this server (mixed old and new binaries?)", "by", by)
		return
	}
	for {
		c.SetReadDeadline(time.Now().Add(idle))
		line, err := readLine(r)
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				s.log().Warn("admin socket: command line too long; closing", "by", by)
			}
			return
		}
		req, err := parseRequest(line)
		if err != nil {
			s.log().Warn("admin socket: "+err.Error()+"; closing", "by", by)
			return
		}
		reply, ok := s.run(ctx, svc, req, by)
		if !ok {
			return
		}
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		// A client that went away does not stop the commands it sent:
		// keep reading what it wrote until the end.
		io.WriteString(c, reply)
	}
}

// run carries out one command and returns its reply; ok false closes the
// connection without one (Dovecot's way of saying a list or a lookup
// failed).
func (s *Socket) run(ctx context.Context, svc *service, r request, by string) (reply string, ok bool) {
	timeout := s.OpTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var b strings.Builder
	var err error
	change := true
	switch r.verb {
	case "HOST-LIST":
		change = false
		var hosts []HostStatus
		if hosts, err = svc.hosts(ctx); err == nil {
			for _, h := range hosts {
				updown, ts := 'U', int64(0)
				if h.Down {
					updown = 'D'
				}
				if !h.ChangedAt.IsZero() {
					ts = h.ChangedAt.Unix()
				}
				fmt.Fprintf(&b, "%s\t%d\t%d\t%s\t%c\t%d\n", h.IP, h.VHosts, h.Users, tabEscape(h.Tag), updown, ts)
			}
			b.WriteByte('\n')
		}
	case "HOST-LIST-REMOVED":
		change = false
		var ips []string
		if ips, err = svc.removedHosts(ctx); err == nil {
			for _, ip := range ips {
				b.WriteString(ip + "\n")
			}
			b.WriteByte('\n')
		}
	case "DIRECTOR-LIST":
		change = false
		var gws []Gateway
		if gws, err = s.Ops.Gateways(ctx); err == nil {
			for _, g := range gws {
				typ, status := "", "synced"
				if g.Self {
					typ, status = "self", "ring synced"
				}
				if g.Fenced {
					status = "fenced off the director store"
				}
				n := 0
				for _, k := range g.Sessions {
					n += k
				}
				status += " - " + strconv.Itoa(n) + " sessions"
				fmt.Fprintf(&b, "%s\t0\t%s\t0\t%s\n", tabEscape(g.Name), typ, tabEscape(status))
			}
			b.WriteByte('\n')
		}
	case "DIRECTOR-ADD", "DIRECTOR-REMOVE":
		change = false
		return "gateways join and leave through the director store, not the admin socket\n", true
	case "HOST-SET":
		err = svc.addHost(ctx, r.ip, r.tag, int(r.vhosts), by)
	case "HOST-UPDATE":
		err = svc.updateHost(ctx, r.ip, r.tag, int(r.vhosts), by)
	case "HOST-UP":
		err = svc.up(ctx, r.ip, by)
	case "HOST-DOWN":
		err = svc.down(ctx, r.ip, by)
	case "HOST-REMOVE":
		err = svc.remove(ctx, r.ip, by)
	case "HOST-FLUSH", "HOST-RESET-USERS":
		// Both are our safe flush: Director's HOST-FLUSH forgot the
		// assignments without ending any session; ours cannot leave a
		// user on two backends.
		err = svc.flush(ctx, r.ip, by)
	case "USER-LOOKUP":
		change = false
		var u UserInfo
		if u, err = svc.lookup(ctx, r.user, r.tag); err == nil {
			if u.Current == "" {
				b.WriteString("\t0")
			} else {
				fmt.Fprintf(&b, "%s\t%d", u.Current, u.Expires.Unix())
			}
			fmt.Fprintf(&b, "\t%s\t%s\n", u.Hashed, u.InitialConfig)
		} else if he := (*hashError)(nil); errors.As(err, &he) {
			// The user name cannot be hashed.
			return "TRYAGAIN\n", true
		}
	case "USER-LIST":
		change = false
		var users []UserEntry
		if users, err = svc.users(ctx, r.ip); err == nil {
			for _, u := range users {
				fmt.Fprintf(&b, "%d\t%d\t%s\n", u.Hash, u.Expires.Unix(), u.Host)
			}
			b.WriteByte('\n')
		}
	case "USER-MOVE":
		err = svc.move(ctx, r.user, r.ip, by)
	case "USER-KICK":
		_, err = svc.kick(ctx, r.user, by)
	case "USER-KICK-ALT":
		change = false
		return "USER-KICK-ALT is not supported: kick the user by name\n", true
	case "RELOAD":
		if s.Reload == nil {
			return "FAILED\tproblem: reload is not served here\n", true
		}
		return reloadLine(s.Reload(ctx, by)), true
	}
	if change {
		reply = "OK\n"
		if err != nil {
			reply = failReply(err, timeout) + "\n"
		}
		lvl := slog.LevelInfo
		if err != nil {
			lvl = slog.LevelWarn
		}
		attrs := []any{"by", by}
		if r.ip != "" {
			attrs = append(attrs, "ip", r.ip)
		}
		if r.user != "" {
			attrs = append(attrs, "user", r.user)
		}
		s.log().Log(ctx, lvl, "admin: "+r.verb, append(attrs, "result", strings.TrimSuffix(reply, "\n"))...)
		return reply, true
	}
	if err != nil {
		s.log().Warn("admin socket: "+r.verb+" failed; closing", "by", by, "reason", err)
		return "", false
	}
	return b.String(), true
}

// failReply renders a failed change as Dovecot's reply line.
func failReply(err error, timeout time.Duration) string {
	var bad *BadRequest
	switch {
	case errors.Is(err, ErrUnknownHost):
		return "NOTFOUND"
	case errors.Is(err, ErrTagChange), errors.Is(err, ErrVHostsTooLarge):
		return err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return replyText(fmt.Sprintf("not done within %v; the move goes on, every gateway finishes it: %v", timeout, err))
	case errors.As(err, &bad):
		return replyText(bad.Msg)
	}
	return replyText(err.Error())
}
