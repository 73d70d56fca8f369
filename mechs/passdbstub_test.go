// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"context"
	"sync"

	"github.com/maildirector/maildirector/auth"
)

// stubUser is one row of stubPassdb.
type stubUser struct {
	stored string      // "{SCHEME}data", "" for none
	status auth.Status // the lookup's answer; zero means StatusOK
	fields auth.Fields
	err    error // returned as it is, instead of an answer
}

// stubPassdb is a Verifier over a map of users, recording the requests it
// sees. A user not in the map is unknown.
type stubPassdb struct {
	users map[string]stubUser

	mu   sync.Mutex
	reqs []auth.Request
}

func (p *stubPassdb) Credentials(_ context.Context, req *auth.Request) (auth.Result, string, error) {
	p.mu.Lock()
	p.reqs = append(p.reqs, *req)
	p.mu.Unlock()
	u, ok := p.users[req.User]
	switch {
	case !ok:
		return auth.Result{Status: auth.StatusUserUnknown}, "", nil
	case u.err != nil:
		return auth.Result{}, "", u.err
	case u.status != 0 && u.status != auth.StatusOK:
		return auth.Result{Status: u.status}, "", nil
	}
	return auth.Result{Status: auth.StatusOK, User: req.User, Fields: u.fields.Clone()}, u.stored, nil
}

func (p *stubPassdb) lastRequest() auth.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.reqs) == 0 {
		return auth.Request{}
	}
	return p.reqs[len(p.reqs)-1]
}

// stubInfo is the Info of a cleartext IMAP connection to gw.test.
func stubInfo(p *stubPassdb) Info {
	return Info{
		Ctx: context.Background(), Service: "imap", Hostname: "gw.test", Verifier: p,
		Request: func(user, authzid string) *auth.Request {
			return &auth.Request{Service: "imap", User: user, AuthzID: authzid, Session: "sess1"}
		},
	}
}
