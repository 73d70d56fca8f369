// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bytes"
	"net"
	"strings"
	"testing"
)

// A backend line longer than the reader's buffer is gathered whole, one
// longer than maxBackendLine is refused, and what follows is read as
// usual.
func TestBackendConnLongLines(t *testing.T) {
	for _, n := range []int{10, backendReadSize - 2, backendReadSize - 1, backendReadSize, 3*backendReadSize + 7, maxBackendLine - 2} {
		a, z := net.Pipe()
		b := NewBackendConn(z)
		want := strings.Repeat("x", n)
		go func() {
			a.Write([]byte(want + "\r\nnext\r\n"))
			a.Close()
		}()
		line, err := b.ReadLine()
		if err != nil || string(line) != want {
			t.Errorf("%d bytes: got %d bytes, %v", n, len(line), err)
		}
		if line, err := b.ReadLine(); err != nil || string(line) != "next" {
			t.Errorf("after %d bytes: %q, %v", n, line, err)
		}
		z.Close()
	}
	a, z := net.Pipe()
	defer z.Close()
	b := NewBackendConn(z)
	go func() {
		a.Write(bytes.Repeat([]byte("y"), maxBackendLine+10))
		a.Close()
	}()
	if _, err := b.ReadLine(); err == nil || !strings.Contains(err.Error(), "over-long") {
		t.Errorf("a line over %d bytes: %v", maxBackendLine, err)
	}
}

// Buffers go back to the pools and come out reset, of the asked size.
func TestLineBufPools(t *testing.T) {
	var p bufPools
	r := p.reader(strings.NewReader("first\n"), 1024)
	w := p.writer(&bytes.Buffer{})
	r.ReadString('\n')
	w.WriteString("unflushed")
	p.put(r, w)
	r2 := p.reader(strings.NewReader("second\n"), 1024)
	if s, _ := r2.ReadString('\n'); s != "second\n" || r2.Size() != 1024 {
		t.Errorf("reused reader read %q, size %d", s, r2.Size())
	}
	var out bytes.Buffer
	w2 := p.writer(&out)
	if w2.Buffered() != 0 {
		t.Errorf("reused writer holds %d bytes", w2.Buffered())
	}
	if r3 := p.reader(strings.NewReader(""), 2048); r3.Size() != 2048 {
		t.Errorf("a reader of another size: %d", r3.Size())
	}
}
