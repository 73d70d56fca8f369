// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"
)

// proxyInfo is what a PROXY protocol header told us: the real client and
// the address it connected to, and whether the balancer terminated TLS.
type proxyInfo struct {
	remote, local netip.AddrPort
	tls           bool
}

// readProxyHeader reads the PROXY v1 or v2 header a trusted load balancer
// sends first (Dovecot's haproxy = yes). It returns a connection that
// replays whatever the reader buffered past the header.
func readProxyHeader(c net.Conn, timeout time.Duration) (net.Conn, proxyInfo, error) {
	br := bufio.NewReaderSize(c, 512)
	c.SetReadDeadline(time.Now().Add(timeout))
	h, err := proxyproto.Read(br)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		if errors.Is(err, proxyproto.ErrNoProxyProtocol) {
			return nil, proxyInfo{}, errors.New("no PROXY protocol header")
		}
		return nil, proxyInfo{}, fmt.Errorf("PROXY protocol header: %w", err)
	}
	info := proxyInfo{remote: addrPort(c.RemoteAddr()), local: addrPort(c.LocalAddr())}
	// A LOCAL command (health checks) carries no client; the connection's
	// own addresses stand.
	if h.Command.IsProxy() {
		if src, dst, ok := h.TCPAddrs(); ok {
			info.remote, info.local = addrPort(src), addrPort(dst)
		}
		if tlvs, err := h.TLVs(); err == nil {
			for _, t := range tlvs {
				if tlvparse.IsSSL(t) {
					if ssl, err := tlvparse.SSL(t); err == nil && ssl.ClientSSL() {
						info.tls = true
					}
				}
			}
		}
	}
	return &replayConn{Conn: c, r: br}, info, nil
}

// replayConn reads first what a bufio.Reader already holds.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// writeProxyHeader sends a backend a PROXY v2 header for the client.
func writeProxyHeader(w io.Writer, remote, local netip.AddrPort) error {
	if !remote.IsValid() || !local.IsValid() {
		h := &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
		_, err := h.WriteTo(w)
		return err
	}
	h := proxyproto.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(remote), net.TCPAddrFromAddrPort(local))
	_, err := h.WriteTo(w)
	return err
}
