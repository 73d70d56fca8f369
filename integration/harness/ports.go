// SPDX-License-Identifier: Apache-2.0

package harness

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"time"
)

// FreePort returns a TCP port that is free on every one of ips at the
// moment of asking, so that several backends can share one port number on
// distinct loopback addresses (the director's ring hashes IPs, not ports).
func FreePort(ips ...string) (int, error) {
	for try := 0; try < 200; try++ {
		port := 20000 + rand.IntN(30000)
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
			return port, nil
		}
	}
	return 0, errors.New("no free port found")
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
