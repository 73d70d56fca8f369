// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"sync"
	"time"

	"github.com/maildirector/maildirector/gateway"
)

// The status page's login chart: logins per 10-second bucket over the
// last 15 minutes. Prometheus keeps the long history; this is what a
// page can draw without one.
const (
	bucketWidth = 10 * time.Second
	buckets     = 90
)

// LoginBucket is the logins of one 10-second stretch, by result.
type LoginBucket struct {
	At         time.Time `json:"at"`
	OK         int       `json:"ok"`
	AuthFailed int       `json:"auth_failed"`
	TempFail   int       `json:"tempfail"`
	Limit      int       `json:"limit"`
	Aborted    int       `json:"aborted"`
}

type history struct {
	now func() time.Time

	mu   sync.Mutex
	ring [buckets]LoginBucket // ring[i] holds the bucket starting at a multiple of bucketWidth
}

func newHistory(now func() time.Time) *history { return &history{now: now} }

func (h *history) slot(t time.Time) (*LoginBucket, time.Time) {
	start := t.Truncate(bucketWidth)
	i := int(start.Unix()/int64(bucketWidth/time.Second)) % buckets
	b := &h.ring[i]
	if !b.At.Equal(start) {
		*b = LoginBucket{At: start}
	}
	return b, start
}

func (h *history) add(r gateway.LoginResult) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, _ := h.slot(h.now())
	switch r {
	case gateway.LoginOK:
		b.OK++
	case gateway.LoginAuthFailed:
		b.AuthFailed++
	case gateway.LoginTempFail:
		b.TempFail++
	case gateway.LoginLimit:
		b.Limit++
	case gateway.LoginAborted:
		b.Aborted++
	}
}

// Logins returns the last 15 minutes of logins, oldest first, one bucket
// per 10 seconds (empty ones included).
func (m *Metrics) Logins() []LoginBucket {
	h := m.history
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now().Truncate(bucketWidth)
	out := make([]LoginBucket, 0, buckets)
	for k := buckets - 1; k >= 0; k-- {
		at := now.Add(-time.Duration(k) * bucketWidth)
		i := int(at.Unix()/int64(bucketWidth/time.Second)) % buckets
		if h.ring[i].At.Equal(at) {
			out = append(out, h.ring[i])
		} else {
			out = append(out, LoginBucket{At: at})
		}
	}
	return out
}
