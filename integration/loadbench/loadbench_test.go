// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPercentileAndMedian(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]float64{0.5: 50, 0.9: 90, 0.99: 99} {
		if got := percentile(d, q); got != want {
			t.Errorf("p%v = %v, want %v", q*100, got, want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile of nothing = %v", got)
	}
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median = %v", got)
	}
	if got := median([]float64{4, 1, 2, 3}); got != 2.5 {
		t.Errorf("median = %v", got)
	}
}

func TestFlags(t *testing.T) {
	o, err := parseFlags([]string{"--cases", "login,idle", "--reps", "5", "--peers", "nginx"})
	if err != nil {
		t.Fatal(err)
	}
	if !o.has("login") || !o.has("idle") || o.has("fetch") || o.reps != 5 || !o.peer(nginx) || o.peer(dovecotDir) {
		t.Errorf("parsed %+v", o)
	}
	for _, bad := range [][]string{{"--cases", "logins"}, {"--peers", "haproxy"}, {"--reps", "0"}, {"extra"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestBigMessage(t *testing.T) {
	m := bigMessage()
	if len(m) != bigSize || !bytes.HasSuffix(m, []byte("\r\n")) || !bytes.Contains(m, []byte("\r\n\r\n")) {
		t.Fatalf("%d bytes, ends %q", len(m), m[len(m)-4:])
	}
	for _, l := range strings.Split(string(m), "\r\n") {
		if strings.ContainsAny(l, "\r\n") || len(l) > 998 {
			t.Fatalf("bad line %q", l)
		}
	}
}
