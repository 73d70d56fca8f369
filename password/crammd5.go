// SPDX-License-Identifier: Apache-2.0

package password

import (
	"crypto/md5"
	"encoding"
	"encoding/binary"
	"errors"
	"hash"
)

// cramMD5Len is the raw length of a CRAM-MD5 / HMAC-MD5 value: two MD5
// states of four 32-bit words.
const cramMD5Len = 32

// HMACMD5Context is what Dovecot stores for CRAM-MD5 (and HMAC-MD5): the
// HMAC-MD5 key reduced to the MD5 states after hashing key^opad and key^ipad
// (RFC 2104 section 4's "precomputation"). It lets a server answer CRAM-MD5
// (RFC 2195) without the plaintext password, though it is as good as one for
// logging in with CRAM-MD5. On disk: 64 hex digits, the outer state then the
// inner, each word little-endian.
type HMACMD5Context struct {
	outer, inner [4]uint32
}

// CRAMMD5Context returns the HMAC-MD5 context for a CRAM-MD5 server
// mechanism from stored: a CRAM-MD5 or HMAC-MD5 value, or a plaintext one
// (PLAIN, CLEAR, CLEARTEXT), from which it is derived. Other schemes cannot
// provide it (ErrUnsupported). Issue 5's SASL mechanisms use it.
func CRAMMD5Context(stored string, p Params) (HMACMD5Context, error) {
	s, raw, err := resolve(stored, p)
	if err != nil {
		return HMACMD5Context{}, err
	}
	switch s.name {
	case "CRAM-MD5", "HMAC-MD5":
		var c HMACMD5Context
		for i := 0; i < 4; i++ {
			c.outer[i] = binary.LittleEndian.Uint32(raw[4*i:])
			c.inner[i] = binary.LittleEndian.Uint32(raw[16+4*i:])
		}
		_, err := md5Resume(c.inner) // so that Sum cannot fail
		return c, err
	case "PLAIN", "CLEAR", "CLEARTEXT":
		return newHMACMD5Context(raw)
	}
	return HMACMD5Context{}, errf(ErrUnsupported, s.name, "cannot provide CRAM-MD5 credentials")
}

// Sum returns HMAC-MD5(key, msg): a CRAM-MD5 server compares it with the
// client's digest (hex-encoded on the wire).
func (c HMACMD5Context) Sum(msg []byte) []byte {
	inner, err := md5Resume(c.inner)
	if err != nil {
		// Only a change of crypto/md5's format gets here, and then
		// CRAMMD5Context has already failed.
		panic(err)
	}
	inner.Write(msg)
	outer, err := md5Resume(c.outer)
	if err != nil {
		panic(err)
	}
	outer.Write(inner.Sum(nil))
	return outer.Sum(nil)
}

// bytes is the stored layout.
func (c HMACMD5Context) bytes() []byte {
	out := make([]byte, 0, cramMD5Len)
	for _, w := range c.outer {
		out = binary.LittleEndian.AppendUint32(out, w)
	}
	for _, w := range c.inner {
		out = binary.LittleEndian.AppendUint32(out, w)
	}
	return out
}

func cramMD5Hash(plain string, _ Params) ([]byte, error) {
	c, err := newHMACMD5Context([]byte(plain))
	if err != nil {
		return nil, err
	}
	return c.bytes(), nil
}

// newHMACMD5Context hashes one block of key^opad and of key^ipad (a key over
// 64 bytes being replaced by its MD5, RFC 2104 section 2).
func newHMACMD5Context(key []byte) (HMACMD5Context, error) {
	if len(key) > md5.BlockSize {
		sum := md5.Sum(key)
		key = sum[:]
	}
	var c HMACMD5Context
	var err error
	if c.outer, err = md5StateAfter(key, 0x5c); err != nil {
		return c, err
	}
	c.inner, err = md5StateAfter(key, 0x36)
	return c, err
}

// MD5's internal state is reached through crypto/md5's BinaryMarshaler,
// whose layout has been fixed since Go 1.11: "md5\x01", the four state words
// big-endian, the 64-byte block buffer, the byte count big-endian. After a
// whole block the buffer is empty, so the state words are all there is.
const (
	md5Magic     = "md5\x01"
	md5Marshaled = len(md5Magic) + 4*4 + md5.BlockSize + 8
)

var errMD5State = errors.New("password: crypto/md5 state format changed")

func md5StateAfter(key []byte, pad byte) ([4]uint32, error) {
	var st [4]uint32
	block := make([]byte, md5.BlockSize)
	copy(block, key)
	for i := range block {
		block[i] ^= pad
	}
	h := md5.New()
	h.Write(block)
	m, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil || len(m) != md5Marshaled || string(m[:4]) != md5Magic {
		return st, errMD5State
	}
	for i := range st {
		st[i] = binary.BigEndian.Uint32(m[4+4*i:])
	}
	return st, nil
}

// md5Resume returns an MD5 hash that has consumed one block and is in state st.
func md5Resume(st [4]uint32) (hash.Hash, error) {
	m := []byte(md5Magic)
	for _, w := range st {
		m = binary.BigEndian.AppendUint32(m, w)
	}
	m = append(m, make([]byte, md5.BlockSize)...)
	m = binary.BigEndian.AppendUint64(m, md5.BlockSize)
	h := md5.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(m); err != nil {
		return nil, errMD5State
	}
	return h, nil
}
