// SPDX-License-Identifier: Apache-2.0

package password

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"hash"
	"strconv"
	"strings"
)

const (
	scramIterations = 4096 // Dovecot's default, and its minimum when verifying
	scramSaltLen    = 16
)

// SCRAMCredentials are what a SCRAM server keeps for a user (RFC 5802
// section 5.1 and 3): the PBKDF2 iteration count and salt it sends the
// client, StoredKey to check the client's proof and ServerKey to sign its
// final message.
type SCRAMCredentials struct {
	Iterations int
	Salt       []byte
	StoredKey  []byte
	ServerKey  []byte
}

// SCRAMKeys returns the credentials for mech ("SCRAM-SHA-1" or
// "SCRAM-SHA-256") from stored: a value in that scheme, or a plaintext one
// (PLAIN, CLEAR, CLEARTEXT), from which they are derived with a fresh salt
// and 4096 iterations, as Dovecot does. Other schemes cannot provide them
// (ErrUnsupported). Issue 5's SASL mechanisms use it.
func SCRAMKeys(stored, mech string, p Params) (SCRAMCredentials, error) {
	newHash, ok := scramHash(mech)
	if !ok {
		return SCRAMCredentials{}, errf(ErrUnknownScheme, mech, "not SCRAM-SHA-1 or SCRAM-SHA-256")
	}
	s, raw, err := resolve(stored, p)
	if err != nil {
		return SCRAMCredentials{}, err
	}
	switch {
	case strings.EqualFold(s.name, mech):
		return parseSCRAM(s.name, newHash, string(raw))
	case s.name == "PLAIN" || s.name == "CLEAR" || s.name == "CLEARTEXT":
		return deriveSCRAM(newHash, string(raw), randomBytes(scramSaltLen), scramIterations)
	}
	return SCRAMCredentials{}, errf(ErrUnsupported, s.name, "cannot provide %s credentials", strings.ToUpper(mech))
}

func scramHash(mech string) (func() hash.Hash, bool) {
	switch strings.ToUpper(mech) {
	case "SCRAM-SHA-1":
		return sha1.New, true
	case "SCRAM-SHA-256":
		return sha256.New, true
	}
	return nil, false
}

// parseSCRAM reads Dovecot's "iter,salt,storedkey,serverkey" (base64 fields).
func parseSCRAM(name string, newHash func() hash.Hash, s string) (SCRAMCredentials, error) {
	var c SCRAMCredentials
	f := strings.Split(s, ",")
	if len(f) != 4 {
		return c, errf(ErrMalformed, name, `not "iter,salt,storedkey,serverkey"`)
	}
	iter, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil || iter < scramIterations {
		return c, errf(ErrMalformed, name, "iteration count %q is not a number of at least %d", f[0], scramIterations)
	}
	if iter > MaxPBKDF2Iterations {
		return c, errf(ErrLimit, name, "iteration count %d is over %d", iter, MaxPBKDF2Iterations)
	}
	size := newHash().Size()
	c.Iterations = int(iter)
	c.Salt, err = base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return c, errf(ErrMalformed, name, "bad salt")
	}
	c.StoredKey, err = base64.StdEncoding.DecodeString(f[2])
	if err != nil || len(c.StoredKey) != size {
		return c, errf(ErrMalformed, name, "bad StoredKey")
	}
	c.ServerKey, err = base64.StdEncoding.DecodeString(f[3])
	if err != nil || len(c.ServerKey) != size {
		return c, errf(ErrMalformed, name, "bad ServerKey")
	}
	return c, nil
}

// deriveSCRAM computes RFC 5802 section 3's keys. Like Dovecot 2.3, it uses
// the password's bytes as they are, without SASLprep.
func deriveSCRAM(newHash func() hash.Hash, plain string, salt []byte, iter int) (SCRAMCredentials, error) {
	salted, err := pbkdf2.Key(newHash, plain, salt, iter, newHash().Size())
	if err != nil {
		return SCRAMCredentials{}, err
	}
	clientKey := hmacSum(newHash, salted, "Client Key")
	h := newHash()
	h.Write(clientKey)
	return SCRAMCredentials{
		Iterations: iter,
		Salt:       salt,
		StoredKey:  h.Sum(nil),
		ServerKey:  hmacSum(newHash, salted, "Server Key"),
	}, nil
}

func hmacSum(newHash func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(newHash, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// String is the stored form.
func (c SCRAMCredentials) String() string {
	b64 := base64.StdEncoding
	return strconv.Itoa(c.Iterations) + "," + b64.EncodeToString(c.Salt) + "," +
		b64.EncodeToString(c.StoredKey) + "," + b64.EncodeToString(c.ServerKey)
}

// verifySCRAM recomputes StoredKey from the password (ServerKey is only
// checked for form, as in Dovecot).
func verifySCRAM(name string, newHash func() hash.Hash) func([]byte, string, Params) (bool, error) {
	return func(raw []byte, plain string, _ Params) (bool, error) {
		c, err := parseSCRAM(name, newHash, string(raw))
		if err != nil {
			return false, err
		}
		got, err := deriveSCRAM(newHash, plain, c.Salt, c.Iterations)
		if err != nil {
			return false, err
		}
		return subtle.ConstantTimeCompare(got.StoredKey, c.StoredKey) == 1, nil
	}
}

func generateSCRAM(name string, newHash func() hash.Hash) func(string, Params) ([]byte, error) {
	return func(plain string, p Params) ([]byte, error) {
		iter := scramIterations
		if p.Rounds != 0 {
			iter = p.Rounds
		}
		if iter < scramIterations || iter > MaxPBKDF2Iterations {
			return nil, errf(ErrInput, name, "iterations %d not in %d..%d", iter, scramIterations, MaxPBKDF2Iterations)
		}
		c, err := deriveSCRAM(newHash, plain, randomBytes(scramSaltLen), iter)
		if err != nil {
			return nil, err
		}
		return []byte(c.String()), nil
	}
}
