// SPDX-License-Identifier: Apache-2.0

package passdb

import (
	"context"
	"errors"

	"github.com/maildirector/maildirector/auth"
)

// DB verifies a login, or looks a user up when req.NoPassword is set.
// Implementations are safe for concurrent use.
//
// Contract: a nil error means the Result's Status is a definitive answer,
// negative answers included. A non-nil error means no answer could be
// obtained and is classified with auth.KindOf; a driver therefore says
// "wrong password" only on purpose, never because a server was down.
type DB interface {
	Verify(ctx context.Context, req *auth.Request) (auth.Result, error)
}

// Entry is one database in a chain, with the rules that say what the chain
// does after it answered.
type Entry struct {
	Name string
	DB   DB
}

// Chain consults its entries in order. The first success wins; a negative
// answer lets the next entry try (Dovecot's default result_failure=continue);
// a failure to answer does too, but if no entry succeeds the chain fails
// temporarily, because that entry might have held the right password
// (Dovecot: "If any of the passdbs had an internal failure and the final
// passdb also returns continue, the authentication will fail with internal
// error").
type Chain struct {
	Entries []Entry
}

// Verify implements DB.
func (c *Chain) Verify(ctx context.Context, req *auth.Request) (auth.Result, error) {
	if len(c.Entries) == 0 {
		return auth.Result{}, auth.Internal("passdb chain", errors.New("no passdb configured"))
	}
	var (
		last    auth.Result
		tempErr error
	)
	for _, e := range c.Entries {
		res, err := e.DB.Verify(ctx, req)
		if err != nil {
			if tempErr == nil {
				tempErr = err
			}
			continue
		}
		switch res.Status {
		case auth.StatusOK, auth.StatusUserDisabled:
			return res, nil
		}
		// Keep the most telling negative answer: "password mismatch" from
		// a database that knew the user beats "unknown" from one that did not.
		if last.Status != auth.StatusPasswordMismatch {
			last = res
		}
	}
	if tempErr != nil {
		return auth.Result{}, tempErr
	}
	return last, nil
}
