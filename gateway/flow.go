// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/mechs"
)

// Flow is the pre-login dialogue every login front end (IMAP, POP3,
// ManageSieve) shares: counting invalid commands and failed logins, the
// SASL exchange, the login itself (passdb or mechanism, penalty, limits,
// director, backend — the client hears OK only after the backend did)
// and the hand-over to the relay. A front end embeds one per client and
// supplies only its syntax and its words: how a challenge and a reply
// look, and the texts of its answers.
type Flow struct {
	C        *ClientConn
	Pipeline *Pipeline
	Registry *Registry
	Service  string // "imap", "pop3", "sieve"
	// MaxAuthFailures and MaxBadCommands end the connection (limits.*).
	MaxAuthFailures, MaxBadCommands int
	// HangUpBeforeLastBad: past MaxBadCommands the client hears only the
	// farewell (IMAP, ManageSieve); otherwise the last invalid command's
	// answer goes first (POP3), as each of Dovecot's login processes does.
	HangUpBeforeLastBad bool

	authFailures, badCommands int
}

// Serve is a front end's session: greet, then run commands with next
// until it says done (logged out, or relayed and finished) or fails;
// disconnect says why a failing session ends.
func Serve(ctx context.Context, greet func() error, next func(ctx context.Context) (done bool, err error), disconnect func(error)) {
	if greet() != nil {
		return
	}
	for {
		done, err := next(ctx)
		if done {
			return
		}
		if err != nil {
			disconnect(err)
			return
		}
	}
}

// Invalid counts an invalid command whose answer answer writes; past
// MaxBadCommands it returns ErrTooManyBad, and the connection ends.
func (f *Flow) Invalid(answer func() error) error {
	f.badCommands++
	last := f.badCommands >= f.MaxBadCommands
	if last && f.HangUpBeforeLastBad {
		return ErrTooManyBad
	}
	if err := answer(); err != nil {
		return err
	}
	if last {
		return ErrTooManyBad
	}
	return nil
}

// RefuseLogin answers with line a login that fails before any database
// is asked (an empty name, a SASL exchange the client botched: to
// Dovecot, failed logins), records it as one and counts it.
func (f *Flow) RefuseLogin(user string, line string) error {
	f.Pipeline.LoginVerdict(f.C, f.Service, user, "", time.Now(), &Refused{Status: auth.StatusPasswordMismatch})
	return f.refuse(line)
}

// refuse answers a failed login with line and counts it; past
// MaxAuthFailures it returns ErrTooManyAuthFailures, after the answer.
func (f *Flow) refuse(line string) error {
	f.authFailures++
	if err := f.C.Printf("%s", line); err != nil {
		return err
	}
	if f.authFailures >= f.MaxAuthFailures {
		return ErrTooManyAuthFailures
	}
	return nil
}

// Fail records the verdict of a failed login of user begun at started
// and refuses it with the protocol's line for err.
func (f *Flow) Fail(user string, started time.Time, err error, line func(o Outcome, reason string, err error) string) error {
	f.Pipeline.LoginVerdict(f.C, f.Service, user, "", started, err)
	o, reason := OutcomeOf(err)
	return f.refuse(line(o, reason, err))
}

// Login logs the client in on its backend (login speaks the protocol
// there) and relays until the session ends; done reports that it did.
// A failure is answered with failLine and counted. okLine makes the
// client's OK of the backend's; method names the login in the log.
func (f *Flow) Login(ctx context.Context, mech string, o mechs.Outcome, login BackendLogin,
	okLine func(backendOK string) string, failLine func(o Outcome, reason string, err error) string, method string) (done bool, err error) {
	c := f.C
	user := f.Pipeline.LogUser(c, f.Service, mech, o)
	started := time.Now()
	t, b, ok, err := f.Pipeline.Login(ctx, c, f.Service, mech, o, login)
	if err != nil {
		return false, f.Fail(user, started, err, failLine)
	}
	defer t.Release()
	f.Pipeline.Proxy(c, t, b, f.Registry, f.Service, method, started, func() error { return c.Printf("%s", okLine(ok)) })
	return true, nil
}

// SASLWire is how a protocol carries a SASL exchange.
type SASLWire interface {
	// Challenge sends a server challenge.
	Challenge(data []byte) error
	// Response reads the client's answer, decoded. It returns
	// ErrCancelled when the client cancels ("*"); any other error ends
	// the exchange and is the caller's to answer.
	Response() ([]byte, error)
}

// ErrCancelled is a client's cancelling of a SASL exchange ("*").
var ErrCancelled = errors.New("authentication aborted by client")

// ErrUnreadable is a SASL message the mechanism cannot read (PLAIN
// without its NULs, an empty one): to Dovecot a failed login.
var ErrUnreadable = errors.New("the mechanism cannot read the client's message")

// SASL runs mechanism m's exchange from the initial response resp (nil:
// none). On success it returns the mechanism's outcome for Login. A
// cancel (ErrCancelled) or a client gone mid-exchange is recorded as an
// aborted login; a database failure during the exchange is answered with
// failLine and counted like any failed login (the returned error is then
// that answer's: nil, or the connection's end). Errors of the wire's
// Response come back as they are.
func (f *Flow) SASL(ctx context.Context, m mechs.Mechanism, resp []byte, w SASLWire, failLine func(o Outcome, reason string, err error) string) (mechs.Outcome, error) {
	started := time.Now()
	ex := mechs.Begin(m, f.Pipeline.MechInfo(ctx, f.C, f.Service))
	for {
		challenge, done, err := ex.Next(resp)
		if errors.Is(err, mechs.ErrMalformed) {
			return mechs.Outcome{}, ErrUnreadable
		}
		if err != nil {
			// The mechanism's lookup could not be made: a failure like
			// any other login's, not a reason to hang up.
			ferr := f.Fail(ex.Outcome().User, started, err, failLine)
			return mechs.Outcome{}, &answered{ferr}
		}
		if done {
			return ex.Outcome(), nil
		}
		if err := w.Challenge(challenge); err != nil {
			return mechs.Outcome{}, err
		}
		if resp, err = w.Response(); err != nil {
			if errors.Is(err, ErrCancelled) {
				f.Pipeline.LoginVerdict(f.C, f.Service, ex.Outcome().User, "", started, ErrAborted)
			} else if !isClientMistake(err) {
				f.Pipeline.LoginVerdict(f.C, f.Service, ex.Outcome().User, "", started, fmt.Errorf("%w: %v", ErrAborted, err))
			}
			return mechs.Outcome{}, err
		}
	}
}

// ClientMistake wraps a wire error that is the client's syntax, answered
// by the protocol and not a verdict on the login.
type ClientMistake struct{ Err error }

func (e *ClientMistake) Error() string { return e.Err.Error() }
func (e *ClientMistake) Unwrap() error { return e.Err }

func isClientMistake(err error) bool {
	var cm *ClientMistake
	return errors.As(err, &cm)
}

// answered is SASL's report that it answered the client already (a
// failed lookup): Answered unwraps what that answer returned.
type answered struct{ err error }

func (a *answered) Error() string { return "login failure answered" }

// Answered reports whether SASL's err was answered already, and the
// error to return from the command (nil: go on).
func Answered(err error) (bool, error) {
	var a *answered
	if errors.As(err, &a) {
		return true, a.err
	}
	return false, nil
}

// PlusWire is the SASL exchange of IMAP and POP3 (RFC 9051 6.2.2, RFC
// 5034 4): a challenge is "+ " and base64, the client answers with a
// line of base64, or "*" to cancel.
type PlusWire struct{ C *ClientConn }

// ErrResponseBase64 is a client response that is not base64: Dovecot
// 2.3.19 (Debian's security backports) ends the exchange as a failed
// login.
var ErrResponseBase64 = &ClientMistake{Err: errors.New("invalid base64 in response")}

// Challenge implements SASLWire.
func (w PlusWire) Challenge(data []byte) error {
	return w.C.Printf("+ %s", base64.StdEncoding.EncodeToString(data))
}

// Response implements SASLWire.
func (w PlusWire) Response() ([]byte, error) {
	line, err := w.C.ReadLine()
	if err != nil {
		return nil, err
	}
	if string(line) == "*" {
		return nil, ErrCancelled
	}
	resp, err := base64.StdEncoding.DecodeString(string(line))
	if err != nil {
		return nil, ErrResponseBase64
	}
	return resp, nil
}
