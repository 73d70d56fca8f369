// SPDX-License-Identifier: Apache-2.0

package harness

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// handedOut holds the ports FreePort returned in this process. A port is
// free only until its child binds it; two callers checking before either
// child started (a backend's four listeners, an extra imaps port for the
// same Dovecot, parallel tests) could both be told the same port, and one
// Dovecot given it twice refuses to start. The set is process-wide because
// ports are: whoever asks, a port is handed out once.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePort returns a TCP port that is free on every one of ips at the
// moment of asking, so that several backends can share one port number on
// distinct loopback addresses (the director's ring hashes IPs, not ports).
//
// The port is drawn from below the kernel's ephemeral range: a port inside
// it can be taken, between this check and the child's bind, as the local
// end of any outgoing connection on the machine (a CI run lost a gateway's
// IMAP port that way).
func FreePort(ips ...string) (int, error) {
	lo, hi := portPool()
	for try := 0; try < 200; try++ {
		port := lo + rand.IntN(hi-lo)
		handedOut.Lock()
		taken := handedOut.ports[port]
		handedOut.Unlock()
		if taken {
			continue
		}
		ok := true
		var held []net.Listener
		for _, ip := range ips {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			held = append(held, l)
		}
		for _, l := range held {
			l.Close()
		}
		if ok {
			handedOut.Lock()
			taken = handedOut.ports[port]
			handedOut.ports[port] = true
			handedOut.Unlock()
			if !taken {
				return port, nil
			}
		}
	}
	return 0, errors.New("no free port found")
}

// FreePorts returns n distinct ports, each free on every one of ips.
func FreePorts(n int, ips ...string) ([]int, error) {
	out := make([]int, n)
	for i := range out {
		p, err := FreePort(ips...)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// portPool returns [lo, hi): the ports below the ephemeral range
// (net.ipv4.ip_local_port_range), above the well-known and common service
// ports. When the range starts too low to leave room, the ports above it.
func portPool() (lo, hi int) {
	const floor = 10000
	ephLo, ephHi := 32768, 60999 // Linux's default
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			a, errA := strconv.Atoi(f[0])
			z, errZ := strconv.Atoi(f[1])
			if errA == nil && errZ == nil && a <= z {
				ephLo, ephHi = a, z
			}
		}
	}
	if ephLo-floor >= 5000 {
		return floor, ephLo
	}
	if 65535-ephHi >= 2000 {
		return ephHi + 1, 65536
	}
	return floor, 65536 // no room outside it: take the chance
}

// WaitListening waits until addr accepts TCP connections.
func WaitListening(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after %v: %w", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
