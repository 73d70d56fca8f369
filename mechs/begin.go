// SPDX-License-Identifier: Apache-2.0

package mechs

// Begin starts a conversation of m, of either kind: a plaintext
// mechanism's credentials come out as an Outcome with a Password to
// check; the others check the client themselves.
func Begin(m Mechanism, info Info) Server {
	if m.Check != nil {
		return m.Check(info)
	}
	return &plaintext{ex: m.Start()}
}

type plaintext struct{ ex Exchange }

func (p *plaintext) Next(response []byte) ([]byte, bool, error) { return p.ex.Next(response) }

func (p *plaintext) Outcome() Outcome {
	c := p.ex.Credentials()
	return Outcome{AuthzID: c.AuthzID, User: c.User, Password: c.Password}
}

// Offer returns the mechanisms to announce on a connection: plaintext
// ones only where plaintext is allowed, -PLUS and EXTERNAL only on TLS.
func Offer(all []Mechanism, plaintextOK, tls bool) []Mechanism {
	var out []Mechanism
	for _, m := range all {
		if (m.Plaintext && !plaintextOK) || (m.NeedsTLS && !tls) {
			continue
		}
		out = append(out, m)
	}
	return out
}

// NeedsMasterUser reports whether a login with m leaves the gateway
// without the client's password, so that the backend login must be a
// master login (the seed memo's DIGEST-MD5 note). The OAuth mechanisms
// need one only when the gateway checks tokens itself; otherwise the
// token is passed on.
func NeedsMasterUser(m Mechanism, checkTokens bool) bool {
	if m.Name == "OAUTHBEARER" || m.Name == "XOAUTH2" {
		return checkTokens
	}
	return !m.Plaintext
}

// TokenMessage is the client message of OAUTHBEARER or XOAUTH2 carrying
// token for user, for the gateway's own login on a backend.
func TokenMessage(mech, user, token string) []byte {
	if mech == "XOAUTH2" {
		return []byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01")
	}
	return []byte("n,a=" + escapeSASLName(user) + ",\x01auth=Bearer " + token + "\x01\x01")
}

// escapeSASLName escapes "," and "=" in a GS2 authzid (RFC 5801 4).
func escapeSASLName(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ',':
			out = append(out, "=2C"...)
		case '=':
			out = append(out, "=3D"...)
		default:
			out = append(out, s[i])
		}
	}
	return string(out)
}

// TokenErrorAck is the client's answer to an OAuth error challenge
// (RFC 7628 3.2.3): OAUTHBEARER's dummy 0x01, XOAUTH2's empty response.
func TokenErrorAck(mech string) []byte {
	if mech == "OAUTHBEARER" {
		return []byte{1}
	}
	return []byte{}
}
