// SPDX-License-Identifier: Apache-2.0

package mechs

import "github.com/maildirector/maildirector/auth"

// Anonymous is RFC 4505 ANONYMOUS: no secret; the client's trace
// information is ignored and the session belongs to Info.AnonymousUser.
// It is off unless configured.
var Anonymous = Mechanism{Name: "ANONYMOUS", Check: func(info Info) Server { return &anonymous{info: info} }}

type anonymous struct {
	info Info
	out  Outcome
}

func (m *anonymous) Next(response []byte) ([]byte, bool, error) {
	if response == nil {
		return []byte{}, false, nil
	}
	if len(response) > 255*4 { // RFC 4505 2: at most 255 characters of trace
		return nil, false, ErrMalformed
	}
	user := m.info.AnonymousUser
	if user == "" {
		user = "anonymous"
	}
	res, _, err := m.info.Verifier.Credentials(m.info.Ctx, m.info.Request(user, ""))
	if err != nil {
		return nil, false, err
	}
	if res.Status == auth.StatusOK && res.User == "" {
		res.User = user
	}
	m.out = Outcome{User: user, Checked: true, Auth: res}
	return nil, true, nil
}

func (m *anonymous) Outcome() Outcome { return m.out }
