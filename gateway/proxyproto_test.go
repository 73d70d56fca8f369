// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bytes"
	"io"
	"net"
	"net/netip"
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

func FuzzReadProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 198.51.100.1 127.0.0.1 1234 143\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x09\x7f\x00\x00\x01\x15\xb3\x00\x8f"))
	f.Fuzz(func(t *testing.T, in []byte) {
		readProxyHeader(conn(in), time.Second)
	})
}
