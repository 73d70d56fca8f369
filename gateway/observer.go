// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"
)

// LoginResult is how a login attempt ended, as metrics count it.
type LoginResult string

const (
	LoginOK         LoginResult = "ok"          // the client heard OK from its backend
	LoginAuthFailed LoginResult = "auth_failed" // wrong password, unknown or disabled user (passdb or backend)
	LoginTempFail   LoginResult = "tempfail"    // a database, the director or the backend could not answer; internal errors too
	LoginLimit      LoginResult = "limit"       // refused by a limit (max_userip_connections)
	LoginAborted    LoginResult = "aborted"     // the client cancelled the exchange or left before the answer
)

// ErrLimit marks a login refused by a limit rather than by a failure: the
// client gets a limit answer, metrics count it as one.
var ErrLimit = errors.New("limit reached")

// userIPLimitPhrase starts Dovecot's refusal of a login over
// mail_max_userip_connections (its login processes' own words).
const userIPLimitPhrase = "Maximum number of connections from user+IP exceeded"

// BackendLimit reads a backend's refusal text: when it is Dovecot's
// user+IP limit, it returns the LimitError to answer with. Backends see
// all of a user's sessions (the director keeps them on one backend), so
// their count spans every gateway of the cluster.
func BackendLimit(text string) *LimitError {
	if i := strings.Index(text, userIPLimitPhrase); i >= 0 {
		return &LimitError{Text: OneLine(text[i:])}
	}
	return nil
}

// ErrAborted is the verdict of a login the client gave up: it cancelled
// the SASL exchange ("*") or went away before hearing the answer.
var ErrAborted = errors.New("login aborted by the client")

// ResultOf classifies a login's end: nil is a success, anything else as
// OutcomeOf sees it, with limits and aborts told apart.
func ResultOf(err error) LoginResult {
	switch {
	case err == nil:
		return LoginOK
	case errors.Is(err, ErrAborted):
		return LoginAborted
	case errors.Is(err, ErrLimit):
		return LoginLimit
	}
	switch o, _ := OutcomeOf(err); o {
	case OutcomeAuthFailed, OutcomeDisabled:
		return LoginAuthFailed
	default:
		return LoginTempFail
	}
}

// Observer is told what the gateway does, for metrics. Its methods are
// called on the login path and must be cheap and safe for concurrent use.
type Observer interface {
	// LoginDone is called exactly once per login attempt that reached a
	// verdict; d runs from the client's login command to the answer.
	LoginDone(service string, r LoginResult, d time.Duration)
	// BackendLogin is one backend's connect and login, ok or not.
	BackendLogin(backend string, ok bool, d time.Duration)
	// Relayed is a relayed session's end, with the bytes each way.
	Relayed(service string, fromClient, toClient int64)
	// Penalized is a login held back by the failed-login penalty.
	Penalized()
	// LMTPRecipient is a recipient's final answer ("ok", "tempfail",
	// "permfail").
	LMTPRecipient(result string)
}

// nopObserver is the Observer of a gateway without metrics.
type nopObserver struct{}

func (nopObserver) LoginDone(string, LoginResult, time.Duration) {}
func (nopObserver) BackendLogin(string, bool, time.Duration)     {}
func (nopObserver) Relayed(string, int64, int64)                 {}
func (nopObserver) Penalized()                                   {}
func (nopObserver) LMTPRecipient(string)                         {}

// Obs returns the pipeline's Observer (a silent one when none is set).
func (p *Pipeline) Obs() Observer {
	if p.Observer == nil {
		return nopObserver{}
	}
	return p.Observer
}

// LoginVerdict records how c's login that began at started ended (err
// nil: the client was told OK): it counts it and writes the login's one
// log line, with fixed keys whatever the result — session, service,
// remote (from c.Log), user, backend ("" when none was reached), result,
// duration, and the reason of a failure (never a password). Front ends
// call it once per attempt.
func (p *Pipeline) LoginVerdict(c *ClientConn, service, user, backend string, started time.Time, err error, extra ...slog.Attr) {
	r, d := ResultOf(err), time.Since(started)
	p.Obs().LoginDone(service, r, d)
	if c == nil || c.Log == nil {
		return
	}
	level := slog.LevelInfo
	if r == LoginTempFail {
		level = slog.LevelWarn
		if o, _ := OutcomeOf(err); o == OutcomeInternal {
			level = slog.LevelError
		}
	}
	attrs := []slog.Attr{slog.String("user", user), slog.String("backend", backend), slog.String("result", string(r)),
		slog.Duration("duration", d.Round(time.Millisecond))}
	if err != nil {
		attrs = append(attrs, slog.String("reason", err.Error()))
	}
	attrs = append(attrs, extra...)
	c.Log.LogAttrs(context.Background(), level, "login", attrs...)
}
