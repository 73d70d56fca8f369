// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// bytesConn is a net.Conn reading from a byte slice.
type bytesConn struct {
	net.Conn
	r io.Reader
}

func (c *bytesConn) Read(p []byte) (int, error)      { return c.r.Read(p) }
func (c *bytesConn) SetReadDeadline(time.Time) error { return nil }
func (c *bytesConn) RemoteAddr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *bytesConn) LocalAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 143} }
func conn(b []byte) net.Conn                         { return &bytesConn{r: bytes.NewReader(b)} }

func TestReadProxyHeader(t *testing.T) {
	var buf bytes.Buffer
	writeProxyHeader(&buf, netip.MustParseAddrPort("192.0.2.9:5555"), netip.MustParseAddrPort("127.0.0.1:143"))
	buf.WriteString("a LOGIN x y\r\n")
	c, info, err := readProxyHeader(conn(buf.Bytes()), time.Second)
	if err != nil || info.remote != netip.MustParseAddrPort("192.0.2.9:5555") || info.local.Port() != 143 {
		t.Fatalf("v2: %+v %v", info, err)
	}
	rest, _ := io.ReadAll(c)
	if string(rest) != "a LOGIN x y\r\n" {
		t.Fatalf("bytes after the header: %q", rest)
	}
	_, info, err = readProxyHeader(conn([]byte("PROXY TCP4 198.51.100.1 127.0.0.1 1234 143\r\nrest")), time.Second)
	if err != nil || info.remote.Addr() != netip.MustParseAddr("198.51.100.1") {
		t.Fatalf("v1: %+v %v", info, err)
	}
	if _, _, err := readProxyHeader(conn([]byte("a LOGIN x y\r\n")), time.Second); err == nil {
		t.Fatal("a connection without a header was accepted on a haproxy listener")
	}
}

// proxyV2 builds a PROXY v2 header (haproxy's proxy-protocol.txt 2.2):
// signature, version and command, family, length, body.
func proxyV2(verCmd, family byte, body ...[]byte) []byte {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n")
	b = append(b, verCmd, family, 0, 0)
	for _, x := range body {
		b = append(b, x...)
	}
	n := len(b) - 16
	b[14], b[15] = byte(n>>8), byte(n)
	return b
}

// proxyTLV is one v2 type-length-value.
func proxyTLV(typ byte, v ...byte) []byte {
	return append([]byte{typ, byte(len(v) >> 8), byte(len(v))}, v...)
}

var (
	v2TCP4 = []byte{192, 0, 2, 9, 127, 0, 0, 1, 0x15, 0xb3, 0, 143}
	v2TCP6 = append(append(netip.MustParseAddr("2001:db8::9").AsSlice(), netip.MustParseAddr("::1").AsSlice()...), 0x15, 0xb3, 0, 143)
	// PP2_TYPE_SSL: client flags (PP2_CLIENT_SSL), verify result, and a
	// PP2_SUBTYPE_SSL_VERSION sub-TLV.
	v2SSL = proxyTLV(0x20, append([]byte{0x01, 0, 0, 0, 0}, proxyTLV(0x21, []byte("TLSv1.3")...)...)...)
)

// FuzzReadProxyHeader reads PROXY v1 and v2 headers. Whatever it takes,
// the connection it returns replays exactly the bytes after the header,
// and only a v2 header can say that the balancer terminated TLS.
func FuzzReadProxyHeader(f *testing.F) {
	for _, s := range []string{
		"PROXY TCP4 198.51.100.1 127.0.0.1 1234 143\r\n",
		"PROXY TCP4 198.51.100.1 127.0.0.1 1234 143\r\na LOGIN x y\r\n",
		"PROXY TCP6 2001:db8::1 ::1 1234 993\r\n",
		"PROXY UNKNOWN\r\n",
		"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n",
		"PROXY TCP4 ::1 ::1 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2",
		"PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n",
		"a LOGIN x y\r\n",
	} {
		f.Add([]byte(s))
	}
	for _, b := range [][]byte{
		proxyV2(0x21, 0x11, v2TCP4),
		append(proxyV2(0x21, 0x11, v2TCP4), "* OK\r\n"...),
		proxyV2(0x21, 0x21, v2TCP6),
		proxyV2(0x20, 0x00),                         // LOCAL: a health check
		proxyV2(0x21, 0x12, v2TCP4),                 // UDP
		proxyV2(0x21, 0x31, make([]byte, 216)),      // AF_UNIX
		proxyV2(0x21, 0x11, v2TCP4, v2SSL),          // TLS terminated at the balancer
		proxyV2(0x21, 0x11, v2TCP4, proxyTLV(0x20)), // SSL TLV too short
		proxyV2(0x21, 0x11, v2TCP4, proxyTLV(0x01, []byte("imap")...), proxyTLV(0x02, []byte("mail.example")...),
			proxyTLV(0x03, 0, 0, 0, 0), proxyTLV(0x04), proxyTLV(0x05, 1, 2, 3)), // ALPN, authority, bad CRC32C, NOOP, unique ID
		proxyV2(0x21, 0x11, v2TCP4[:8]),  // truncated addresses
		proxyV2(0x22, 0x11, v2TCP4),      // unknown command
		proxyV2(0x11, 0x11, v2TCP4),      // version 1 in a v2 header
		proxyV2(0x21, 0x11, v2TCP4)[:20], // header cut short
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, info, err := readProxyHeader(conn(in), time.Second)
		if err != nil {
			return
		}
		rest, _ := io.ReadAll(c)
		if len(rest) >= len(in) || !bytes.HasSuffix(in, rest) {
			t.Fatalf("%q: header taken, then %q replayed", in, rest)
		}
		if info.tls && !bytes.HasPrefix(in, []byte("\r\n\r\n\x00\r\nQUIT\n")) {
			t.Fatalf("%q: TLS without a v2 header", in)
		}
		if !info.remote.IsValid() || !info.local.IsValid() {
			t.Fatalf("%q: addresses %+v", in, info)
		}
	})
}

// FuzzProxyHeaderRoundTrip: the v2 header we send a backend reads back
// as the addresses it was made of.
func FuzzProxyHeaderRoundTrip(f *testing.F) {
	f.Add([]byte{192, 0, 2, 9}, uint16(5555), []byte{127, 0, 0, 1}, uint16(143))
	f.Add(netip.MustParseAddr("2001:db8::9").AsSlice(), uint16(1), netip.MustParseAddr("::1").AsSlice(), uint16(993))
	f.Add(netip.MustParseAddr("::ffff:192.0.2.9").AsSlice(), uint16(0), []byte{127, 0, 0, 1}, uint16(110))
	f.Add([]byte{192, 0, 2, 9}, uint16(5555), netip.MustParseAddr("::1").AsSlice(), uint16(4190)) // mixed families
	f.Fuzz(func(t *testing.T, src []byte, sport uint16, dst []byte, dport uint16) {
		s, ok1 := netip.AddrFromSlice(src)
		d, ok2 := netip.AddrFromSlice(dst)
		if !ok1 || !ok2 {
			return
		}
		remote, local := netip.AddrPortFrom(s.Unmap(), sport), netip.AddrPortFrom(d.Unmap(), dport)
		var buf bytes.Buffer
		if err := writeProxyHeader(&buf, remote, local); err != nil {
			t.Fatalf("%v -> %v: %v", remote, local, err)
		}
		buf.WriteString("payload")
		c, info, err := readProxyHeader(conn(buf.Bytes()), time.Second)
		if err != nil {
			t.Fatalf("%v -> %v: header %x reads as %v", remote, local, buf.Bytes(), err)
		}
		if info.remote != remote || info.local != local || info.tls {
			t.Fatalf("%v -> %v read back as %+v", remote, local, info)
		}
		if rest, _ := io.ReadAll(c); string(rest) != "payload" {
			t.Fatalf("payload read back as %q", rest)
		}
	})
}
