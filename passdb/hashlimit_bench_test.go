// SPDX-License-Identifier: Apache-2.0

package passdb

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/password"
)

// BenchmarkArgon2Burst sends 16 logins at once against ARGON2ID hashes
// (Dovecot's default m=64 MiB, t=3) through a chain with the default
// limit (one check per core) and through one without a limit, side by
// side, and reports the process's peak resident memory during the burst:
//
//	go test ./passdb -run '^$' -bench Argon2Burst -benchtime 2x
func BenchmarkArgon2Burst(b *testing.B) {
	stored, err := password.Generate("ARGON2ID", "secret", password.Params{})
	if err != nil {
		b.Fatal(err)
	}
	f := &fakeDB{users: map[string]auth.Fields{"alice": {"password": stored}}}
	for _, tc := range []struct {
		name  string
		limit *HashLimit
	}{
		{"limit=cores", NewHashLimit(runtime.GOMAXPROCS(0))},
		{"unlimited", nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := chain(entry(f))
			c.HashLimit = tc.limit
			debug.FreeOSMemory() // what an earlier case left must not count
			resetPeakRSS(b)
			b.ResetTimer()
			for range b.N {
				var wg sync.WaitGroup
				for range 16 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						res, err := c.Verify(context.Background(), &auth.Request{User: "alice", Password: "secret", Service: "imap"})
						if err != nil || res.Status != auth.StatusOK {
							b.Errorf("%+v, %v", res, err)
						}
					}()
				}
				wg.Wait()
			}
			b.ReportMetric(float64(peakRSSKiB(b))/1024, "MiB-peak-RSS")
		})
	}
}

// resetPeakRSS resets the kernel's high-water mark of this process's
// resident memory (clear_refs 5), so that each case measures its own peak.
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Skipf("cannot reset the peak RSS here: %v", err)
	}
}

func peakRSSKiB(b *testing.B) int {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return n
		}
	}
	b.Skip("no VmHWM in /proc/self/status")
	return 0
}
