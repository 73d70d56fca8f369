// SPDX-License-Identifier: Apache-2.0

package doveadm

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/gateway"
)

// command handles one command line; false ends the connection.
func (s *session) command(ctx context.Context, line string) bool {
	c := s.c
	cmd, bad := parseCommand(line)
	if cmd == nil {
		// Dovecot's server says why and hangs up.
		c.Log.Info("doveadm: bad command line", "reason", bad)
		s.out.log(levelError, bad)
		c.W.Flush()
		return false
	}
	log := c.Log.With("command", cmd.name)
	if cmd.hasNUL() {
		return s.refuseCmd(log, &errNUL, cmd)
	}
	user, maskAt := cmd.user, -1
	switch {
	case cmd.name == "kick":
		// kick is no mail command: the user field means nothing to the
		// server, the mask says whose sessions end.
		if user, maskAt = kickUser(cmd.args); maskAt < 0 {
			return s.refuseCmd(log, &errKickMask, cmd)
		}
	case isServerWide(cmd.name):
		return s.refuseCmd(log, &errServerWide, cmd)
	case user == "":
		return s.refuseCmd(log, &errNoUser, cmd)
	}
	t, r := s.route(ctx, user, log.With("user", user))
	if r != nil {
		return s.refuseCmd(log.With("user", user), r, cmd)
	}
	// The assignment is held while the command runs: a move of the user
	// waits for it, as for an LMTP delivery.
	defer t.Release()
	log = log.With("user", t.User, "backend", t.Addr(), "route", t.Route)
	// The backend gets the name the passdb and the director use (Dovecot's
	// proxy sends destuser/user= too); the arguments are left as given.
	var out string
	if maskAt >= 0 {
		args := slices.Clone(cmd.args)
		args[maskAt] = t.User
		out = joinLine(append([]string{cmd.flags, cmd.user, cmd.name}, args...))
	} else {
		out = cmd.line(t.User)
	}
	return s.run(ctx, t, cmd, out, log)
}

// refuse ends a command without a backend; false when the client is gone.
func (s *session) refuse(log *slog.Logger, r *refusal) bool {
	log.Info("doveadm: command refused", "code", r.code)
	return s.out.fail(r.code, r.text) == nil
}

// refuseCmd refuses cmd. The doveadm client sends save's input right
// behind the command line, without waiting: it is read and dropped first,
// or its lines would be taken for commands.
func (s *session) refuseCmd(log *slog.Logger, r *refusal, cmd *command) bool {
	if cmd.name == "save" {
		s.c.Conn().SetReadDeadline(time.Now().Add(s.srv.idle()))
		if err := copyDotStream(io.Discard, s.c.R); err != nil {
			return false
		}
	}
	return s.refuse(log, r)
}

// run sends the command line to t's backend and relays the client's input
// to it and its reply back.
func (s *session) run(ctx context.Context, t *gateway.Target, cmd *command, line string, log *slog.Logger) bool {
	c := s.c
	// A stopping gateway lets the command finish (within its grace) rather
	// than leave the client unsure whether an expunge happened.
	c.SetBusy(true)
	defer c.SetBusy(false)
	dctx, cancel := context.WithTimeout(ctx, t.Timeout)
	be, err := s.dialBackend(dctx, t)
	cancel()
	if err != nil {
		log.Warn("doveadm: backend unavailable", "reason", err)
		if auth.KindOf(err) == auth.KindInternal {
			return s.refuseCmd(log, &errBackendSetup, cmd)
		}
		return s.refuseCmd(log, &errBackendDown, cmd)
	}
	forget := c.CloseOnCut(be.conn.Conn())
	defer func() {
		forget()
		be.close()
	}()
	timeout := s.srv.commandTimeout()
	be.conn.Conn().SetDeadline(time.Now().Add(timeout))
	be.conn.W.WriteString(line)
	if err := be.conn.W.Flush(); err != nil {
		log.Warn("doveadm: backend lost", "reason", err)
		return s.refuseCmd(log, &errBackendDown, cmd)
	}
	in := s.relayInput(be, timeout)
	tail, result, boundary, err := s.relayReply(be, timeout)
	// The backend is done with (or lost to) this command: an input copy
	// still running drains the client's stream without it. It must be
	// stopped before the client hears the result, or the command the
	// client sends next would be taken for input.
	be.close()
	inErr := in.stop(c.Conn())
	switch {
	case err == nil:
		c.Conn().SetWriteDeadline(time.Now().Add(timeout))
		s.out.reply(tail)
		if err := s.out.w.Flush(); err != nil {
			return false
		}
		log.Info("doveadm: command done", "result", result)
	case boundary && inErr == nil:
		log.Warn("doveadm: backend lost during the command", "reason", err)
		return s.refuse(log, &errBackendDown)
	default:
		// Part of a field or of the result is out already: the client can
		// only be told by the connection's end.
		log.Warn("doveadm: backend or client lost during the command", "reason", err, "input", inErr)
		return false
	}
	return inErr == nil
}

// relayReply passes the backend's reply to the client until its end. The
// printed fields are tab-escaped, so they hold no LF: the first LF of the
// reply channel ends them, and the line after it is the result, "+" or
// "-CODE". Log lines go on to the client's log channel. The reply's last
// bytes, its result line among them, are returned unsent (tail). boundary
// reports, on failure, whether the client has been sent whole fields only
// (our own failure may then end the reply cleanly).
func (s *session) relayReply(be *backend, timeout time.Duration) (tail []byte, result string, boundary bool, err error) {
	const (
		printing = iota
		inResult
	)
	state, boundary := printing, true
	var res []byte
	buf := make([]byte, 32*1024)
	for {
		be.conn.Conn().SetReadDeadline(time.Now().Add(timeout))
		ch, n, err := be.in.next(buf)
		if n > 0 {
			data := buf[:n]
			switch ch {
			case 0:
				done := false
				end := len(data)
				for i, b := range data {
					if state == printing {
						if b == '\n' {
							state, boundary = inResult, false
						} else {
							boundary = b == '\t'
						}
						continue
					}
					if b == '\n' {
						end, done = i+1, true
						break
					}
					if len(res) < 256 {
						res = append(res, b)
					}
				}
				if done {
					if len(res) == 0 || (res[0] != '+' && res[0] != '-') {
						return nil, "", false, errors.New("backend sent a broken reply")
					}
					if end < len(data) {
						s.c.Log.Debug("doveadm: backend sent more than its reply")
					}
					return slices.Clone(data[:end]), string(res), false, nil
				}
				s.c.Conn().SetWriteDeadline(time.Now().Add(timeout))
				if werr := s.out.reply(data[:end]); werr != nil {
					return nil, "", false, werr
				}
			case logChannel:
				s.out.relayLog(data)
			}
		}
		if err != nil {
			if err == io.EOF {
				err = gateway.ErrBackendClosed
			}
			s.out.w.Flush()
			return nil, "", boundary && state == printing, err
		}
		if !be.in.buffered() {
			s.c.Conn().SetWriteDeadline(time.Now().Add(timeout))
			if err := s.out.w.Flush(); err != nil {
				return nil, "", false, err
			}
		}
	}
}

// inputRelay copies a command's input (a dot stream) from the client to
// the backend while the reply is awaited. Most commands have none: the
// client then sends nothing until the reply is over, and the copy is
// stopped before it read a byte.
type inputRelay struct {
	mu                   sync.Mutex
	started, interrupted bool
	done                 chan error
}

func (s *session) relayInput(be *backend, timeout time.Duration) *inputRelay {
	c := s.c
	ir := &inputRelay{done: make(chan error, 1)}
	c.Conn().SetReadDeadline(time.Now().Add(timeout))
	go func() {
		var err error
		for {
			_, err = c.R.Peek(1)
			ir.mu.Lock()
			if ir.interrupted {
				ir.mu.Unlock()
				ir.done <- nil
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// A client waiting in silence for a long command is no
				// stalled one. (Under the lock: stop's wake-up must not
				// be overwritten.)
				c.Conn().SetReadDeadline(time.Now().Add(timeout))
				ir.mu.Unlock()
				continue
			}
			ir.started = err == nil
			ir.mu.Unlock()
			break
		}
		if err == nil {
			w := &stickyWriter{w: &deadlineWriter{w: be.conn.W, client: c.Conn(), backend: be.conn.Conn(), timeout: timeout}}
			if err = copyDotStream(w, c.R); err == nil && w.err == nil {
				w.err = be.conn.W.Flush()
			}
		}
		if err != nil {
			// The client is gone (or stalled) in the middle of the
			// command: the backend's work is for nobody.
			be.close()
		}
		ir.done <- err
	}()
	return ir
}

// stop waits for the copy to end, waking it if it never started.
func (ir *inputRelay) stop(client net.Conn) error {
	ir.mu.Lock()
	if !ir.started {
		ir.interrupted = true
		client.SetReadDeadline(time.Now())
	}
	ir.mu.Unlock()
	err := <-ir.done
	if errors.Is(err, os.ErrDeadlineExceeded) && !ir.started {
		return nil
	}
	return err
}

// deadlineWriter pushes both connections' deadlines on with every chunk
// of input: a long upload is not a silent one.
type deadlineWriter struct {
	w               io.Writer
	client, backend net.Conn
	timeout         time.Duration
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	now := time.Now()
	d.client.SetReadDeadline(now.Add(d.timeout))
	d.backend.SetWriteDeadline(now.Add(d.timeout))
	return d.w.Write(p)
}
