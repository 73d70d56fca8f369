// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"github.com/maildirector/maildirector/auth"
)

// External is RFC 4422 appendix A EXTERNAL with a TLS client certificate:
// the certificate, verified by the TLS layer against the configured CAs,
// names the user (its commonName or emailAddress); the client may ask for
// exactly that identity, or for none.
var External = Mechanism{Name: "EXTERNAL", NeedsTLS: true, Check: func(info Info) Server { return &external{info: info} }}

type external struct {
	info Info
	out  Outcome
}

func (m *external) Next(response []byte) ([]byte, bool, error) {
	if response == nil {
		return []byte{}, false, nil
	}
	if len(response) > maxField {
		return nil, false, ErrMalformed
	}
	user := certUser(m.info)
	m.out = Outcome{User: user, AuthzID: string(response), Checked: true}
	if user == "" || (len(response) > 0 && string(response) != user) {
		// No verified certificate, or it names someone else.
		m.out.Auth = auth.Result{Status: auth.StatusUserUnknown}
		return nil, true, nil
	}
	res, _, err := m.info.Verifier.Credentials(m.info.Ctx, m.info.Request(user, ""))
	if err != nil {
		return nil, false, err
	}
	m.out.Auth = res
	return nil, true, nil
}

func (m *external) Outcome() Outcome { return m.out }

// certUser names the user in the client's verified certificate, "" when
// there is none.
func certUser(info Info) string {
	s := info.TLS
	if s == nil || len(s.VerifiedChains) == 0 || len(s.PeerCertificates) == 0 {
		return ""
	}
	c := s.PeerCertificates[0]
	if info.CertUsernameField == "emailAddress" {
		if len(c.EmailAddresses) > 0 {
			return c.EmailAddresses[0]
		}
		return ""
	}
	return c.Subject.CommonName
}
