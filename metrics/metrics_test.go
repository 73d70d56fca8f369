// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/health"
	"github.com/maildirector/maildirector/director/store/memory"
	"github.com/maildirector/maildirector/gateway"
)

// The helpers below stand in for client_golang's testutil package, which
// needs github.com/kylelemons/godebug listed in go.mod: reading the
// registry's own Gather output checks the same thing.

// series finds the series of family name whose labels are exactly
// labels (name, value pairs); nil when there is none.
func series(t *testing.T, g prometheus.Gatherer, name string, labels ...string) *dto.Metric {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(want) {
				continue
			}
			match := true
			for _, lp := range m.GetLabel() {
				if v, ok := want[lp.GetName()]; !ok || v != lp.GetValue() {
					match = false
				}
			}
			if match {
				return m
			}
		}
	}
	return nil
}

// value is a counter's or gauge's value, or a histogram's sample count.
func value(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	m := series(t, g, name, labels...)
	switch {
	case m == nil:
		t.Fatalf("no series %s%v", name, labels)
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	t.Fatalf("%s%v: not a counter, gauge or histogram", name, labels)
	return 0
}

// countSeries is how many series family name has.
func countSeries(t *testing.T, g prometheus.Gatherer, name string) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// text renders the families named in names in the text format, without
// HELP lines (TYPE lines stay: they tell a counter from a gauge).
func text(t *testing.T, g prometheus.Gatherer, names ...string) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if slices.Contains(names, mf.GetName()) {
			if err := enc.Encode(mf); err != nil {
				t.Fatal(err)
			}
		}
	}
	var out []string
	for _, l := range strings.Split(buf.String(), "\n") {
		if l != "" && !strings.HasPrefix(l, "# HELP ") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n") + "\n"
}

// clock is a settable time for the login history.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTest returns metrics whose login history runs on a clock starting
// at start.
func newTest(start time.Time) (*Metrics, *clock) {
	m := New()
	c := &clock{t: start}
	m.history = newHistory(c.now)
	return m, c
}

func TestLoginDoneCounts(t *testing.T) {
	m, _ := newTest(time.Date(2026, 12, 6, 12, 0, 3, 0, time.UTC))
	logins := []struct {
		service string
		r       gateway.LoginResult
		n       int
		d       time.Duration
	}{
		{"imap", gateway.LoginOK, 3, 20 * time.Millisecond},
		{"imap", gateway.LoginAuthFailed, 2, 2 * time.Second},
		{"imap", gateway.LoginAborted, 1, time.Second},
		{"pop3", gateway.LoginTempFail, 1, 5 * time.Second},
		{"sieve", gateway.LoginLimit, 1, time.Millisecond},
	}
	for _, l := range logins {
		for range l.n {
			m.LoginDone(l.service, l.r, l.d)
		}
	}
	reg := m.Registry()
	for _, l := range logins {
		if got := value(t, reg, "maildirector_logins_total", "protocol", l.service, "result", string(l.r)); got != float64(l.n) {
			t.Errorf("logins_total{%s,%s} = %v, want %d", l.service, l.r, got, l.n)
		}
		h := series(t, reg, "maildirector_login_duration_seconds", "protocol", l.service, "result", string(l.r)).GetHistogram()
		if h.GetSampleCount() != uint64(l.n) || h.GetSampleSum() != float64(l.n)*l.d.Seconds() {
			t.Errorf("login_duration_seconds{%s,%s}: %d samples summing to %v, want %d and %v",
				l.service, l.r, h.GetSampleCount(), h.GetSampleSum(), l.n, float64(l.n)*l.d.Seconds())
		}
	}
	if n := countSeries(t, reg, "maildirector_logins_total"); n != len(logins) {
		t.Errorf("%d logins_total series, want %d (one per protocol and result seen)", n, len(logins))
	}

	// The history counts the same logins, whatever the protocol.
	got := m.Logins()
	last := got[len(got)-1]
	want := LoginBucket{At: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC), OK: 3, AuthFailed: 2, TempFail: 1, Limit: 1, Aborted: 1}
	if last != want {
		t.Errorf("last bucket %+v, want %+v", last, want)
	}
}

func TestLoginHistoryBuckets(t *testing.T) {
	start := time.Date(2026, 12, 6, 12, 0, 7, 0, time.UTC)
	m, clk := newTest(start)

	empty := m.Logins()
	if len(empty) != buckets || buckets != 90 {
		t.Fatalf("%d buckets, want 90 (15 minutes of 10 s)", len(empty))
	}
	// Oldest first, 10 s apart, the last one holding now.
	for i, b := range empty {
		at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC).Add(-time.Duration(buckets-1-i) * 10 * time.Second)
		if !b.At.Equal(at) || b != (LoginBucket{At: b.At}) {
			t.Fatalf("bucket %d: %+v, want an empty bucket at %v", i, b, at)
		}
	}

	m.LoginDone("imap", gateway.LoginOK, 0)
	clk.advance(2 * time.Second) // 12:00:09, same bucket
	m.LoginDone("imap", gateway.LoginAuthFailed, 0)
	clk.advance(time.Second) // 12:00:10, the next one
	m.LoginDone("pop3", gateway.LoginOK, 0)

	got := m.Logins()
	if n := len(got); n != buckets {
		t.Fatalf("%d buckets", n)
	}
	if b := got[buckets-1]; b.At != time.Date(2026, 12, 6, 12, 0, 10, 0, time.UTC) || b.OK != 1 || b.AuthFailed != 0 {
		t.Errorf("bucket of 12:00:10: %+v, want 1 ok", b)
	}
	if b := got[buckets-2]; b.At != time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC) || b.OK != 1 || b.AuthFailed != 1 {
		t.Errorf("bucket of 12:00:00: %+v, want 1 ok and 1 auth_failed", b)
	}

	// A quiet stretch: the buckets stay where their time is; the empty
	// ones in between are there, empty.
	clk.advance(5 * time.Minute) // 12:05:10
	got = m.Logins()
	if b := got[buckets-1]; b.At != time.Date(2026, 12, 6, 12, 5, 10, 0, time.UTC) || b.OK != 0 {
		t.Errorf("last bucket after 5 quiet minutes: %+v", b)
	}
	if b := got[buckets-1-30]; b.At != time.Date(2026, 12, 6, 12, 0, 10, 0, time.UTC) || b.OK != 1 {
		t.Errorf("30 buckets back: %+v, want 12:00:10 with 1 ok", b)
	}
	if b := got[buckets-1-31]; b.At != time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC) || b.OK != 1 || b.AuthFailed != 1 {
		t.Errorf("31 buckets back: %+v, want 12:00:00 with 1 ok and 1 auth_failed", b)
	}
	for i, b := range got {
		if i != buckets-1-30 && i != buckets-1-31 && b != (LoginBucket{At: b.At}) {
			t.Errorf("bucket %d (%v) is not empty: %+v", i, b.At, b)
		}
	}

	// 12:00:00 is the oldest bucket at 12:14:50 and gone at 12:15:00.
	clk.t = time.Date(2026, 12, 6, 12, 14, 59, 0, time.UTC)
	if b := m.Logins()[0]; b.At != time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC) || b.OK != 1 || b.AuthFailed != 1 {
		t.Errorf("oldest bucket at 12:14:59: %+v, want 12:00:00's", b)
	}
	clk.t = time.Date(2026, 12, 6, 12, 15, 0, 0, time.UTC)
	if b := m.Logins()[0]; b.At != time.Date(2026, 12, 6, 12, 0, 10, 0, time.UTC) || b.OK != 1 {
		t.Errorf("oldest bucket at 12:15:00: %+v, want 12:00:10's", b)
	}
	// A login 15 minutes later reuses 12:00:00's slot of the ring: it
	// starts from nothing.
	m.LoginDone("imap", gateway.LoginTempFail, 0)
	got = m.Logins()
	if b := got[buckets-1]; b != (LoginBucket{At: time.Date(2026, 12, 6, 12, 15, 0, 0, time.UTC), TempFail: 1}) {
		t.Errorf("bucket of 12:15:00: %+v, want 1 tempfail only", b)
	}
	total := 0
	for _, b := range got {
		total += b.OK + b.AuthFailed + b.TempFail + b.Limit + b.Aborted
	}
	if total != 2 {
		t.Errorf("%d logins in the last 15 minutes, want 2 (12:00:10's and 12:15:00's)", total)
	}
}

func TestEventCounters(t *testing.T) {
	m := New()
	reg := m.Registry()
	m.BackendLogin("10.0.0.1", true, 30*time.Millisecond)
	m.BackendLogin("10.0.0.1", true, 40*time.Millisecond)
	m.BackendLogin("10.0.0.2", false, 10*time.Second)
	m.Relayed("imap", 100, 2000)
	m.Relayed("imap", 5, 50)
	m.Penalized()
	m.Penalized()
	m.LMTPRecipient("ok")
	m.LMTPRecipient("ok")
	m.LMTPRecipient("permfail")
	m.Passdb()("sql1", "sql", "ok", time.Millisecond)
	m.Userdb()("static", "static", "not_found", time.Millisecond)
	m.Reloaded(false)

	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"maildirector_backend_login_duration_seconds", []string{"backend", "10.0.0.1", "result", "ok"}, 2},
		{"maildirector_backend_login_duration_seconds", []string{"backend", "10.0.0.2", "result", "failed"}, 1},
		{"maildirector_relayed_bytes_total", []string{"protocol", "imap", "direction", "in"}, 105},
		{"maildirector_relayed_bytes_total", []string{"protocol", "imap", "direction", "out"}, 2050},
		{"maildirector_auth_penalty_delays_total", nil, 2},
		{"maildirector_lmtp_recipients_total", []string{"result", "ok"}, 2},
		{"maildirector_lmtp_recipients_total", []string{"result", "permfail"}, 1},
		{"maildirector_auth_lookup_duration_seconds", []string{"db", "passdb", "name", "sql1", "driver", "sql", "result", "ok"}, 1},
		{"maildirector_auth_lookup_duration_seconds", []string{"db", "userdb", "name", "static", "driver", "static", "result", "not_found"}, 1},
		{"maildirector_config_reloads_total", []string{"result", "failed"}, 1},
	} {
		if got := value(t, reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	// A failed reload leaves the last success where it was; a good one
	// moves it.
	before := value(t, reg, "maildirector_config_last_reload_success_timestamp_seconds")
	if now := float64(time.Now().Unix()); before < now-60 || before > now+1 {
		t.Errorf("last reload success at %v, want about now (%v): New counts as the first load", before, now)
	}
	time.Sleep(10 * time.Millisecond)
	m.Reloaded(true)
	if after := value(t, reg, "maildirector_config_last_reload_success_timestamp_seconds"); after <= before {
		t.Errorf("after a good reload the timestamp is %v, before %v", after, before)
	}
	if got := value(t, reg, "maildirector_config_reloads_total", "result", "ok"); got != 1 {
		t.Errorf("config_reloads_total{ok} = %v", got)
	}
}

// failingStore answers every request with err; the calls the decorator
// must pass through untimed are recorded.
type failingStore struct {
	director.Store
	err     error
	through []string
}

func (f *failingStore) Attach(director.Cluster) { f.through = append(f.through, "attach") }
func (f *failingStore) Start(context.Context, []director.Host, string) error {
	f.through = append(f.through, "start")
	return f.err
}
func (f *failingStore) Close() error { f.through = append(f.through, "close"); return f.err }
func (f *failingStore) Lead(context.Context, string, func(context.Context)) error {
	f.through = append(f.through, "lead")
	return f.err
}
func (f *failingStore) Hosts(context.Context) ([]director.HostRecord, error) { return nil, f.err }
func (f *failingStore) PutHost(context.Context, director.HostRecord) error   { return f.err }
func (f *failingStore) UpdateHost(context.Context, string, func(*director.HostRecord) error) error {
	return f.err
}
func (f *failingStore) Claim(context.Context, string, director.Assignment, time.Time) (director.Assignment, bool, error) {
	return director.Assignment{}, false, f.err
}
func (f *failingStore) Refresh(context.Context, []director.Refresh) ([]string, error) {
	return nil, f.err
}
func (f *failingStore) Get(context.Context, string) (director.Assignment, bool, error) {
	return director.Assignment{}, false, f.err
}
func (f *failingStore) Delete(context.Context, string) error { return f.err }
func (f *failingStore) Range(context.Context, func(string, director.Assignment) bool) error {
	return f.err
}
func (f *failingStore) Move(context.Context, director.Move) error                { return f.err }
func (f *failingStore) Gateways(context.Context) ([]director.GatewayLoad, error) { return nil, f.err }
func (f *failingStore) Who(context.Context, string) ([]director.UserLoad, error) { return nil, f.err }

// storeOps are the requests the decorator times, by their op label.
var storeOps = []string{"hosts", "put_host", "update_host", "claim", "refresh", "get", "delete", "range", "move", "gateways", "who"}

// callAll makes each timed request of s once.
func callAll(t *testing.T, s director.Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	s.Hosts(ctx)
	s.PutHost(ctx, director.HostRecord{Host: director.Host{IP: "10.0.0.3", VHosts: 100}})
	s.UpdateHost(ctx, "10.0.0.3", func(h *director.HostRecord) error { h.VHosts = 50; return nil })
	s.Claim(ctx, "user", director.Assignment{Backend: "10.0.0.3", Expires: now.Add(time.Minute)}, now)
	s.Refresh(ctx, []director.Refresh{{Key: "user", Backend: "10.0.0.3", Until: now.Add(2 * time.Minute)}})
	s.Get(ctx, "user")
	s.Delete(ctx, "user")
	s.Range(ctx, func(string, director.Assignment) bool { return true })
	s.Move(ctx, director.Move{ID: "m1", Key: "user", Reason: "move", At: now})
	s.Gateways(ctx)
	s.Who(ctx, "user")
}

func TestStoreDecorator(t *testing.T) {
	m := New()
	reg := m.Registry()

	// The memory store answers everything: every op counted once, ok.
	mem := memory.New()
	s := m.Store(mem)
	if err := s.Start(context.Background(), []director.Host{{IP: "10.0.0.1", VHosts: 100}}, "test"); err != nil {
		t.Fatal(err)
	}
	callAll(t, s)
	if hs, _ := mem.Hosts(context.Background()); len(hs) != 2 || hs[1].VHosts != 50 {
		t.Errorf("the decorated store's hosts: %+v, want 10.0.0.1 and 10.0.0.3 at 50 vhosts (calls reach the store)", hs)
	}
	for _, op := range storeOps {
		if got := value(t, reg, "maildirector_director_store_request_duration_seconds", "op", op, "result", "ok"); got != 1 {
			t.Errorf("store op %s ok: %v requests, want 1", op, got)
		}
	}
	if n := countSeries(t, reg, "maildirector_director_store_request_duration_seconds"); n != len(storeOps) {
		t.Errorf("%d store series, want %d", n, len(storeOps))
	}

	// A store that fails everything: every op counted once more, as an
	// error; the calls that are no requests pass through uncounted.
	boom := errors.New("etcd: context deadline exceeded")
	f := &failingStore{err: boom}
	fs := m.Store(f)
	fs.Attach(nil)
	if err := fs.Start(context.Background(), nil, "test"); !errors.Is(err, boom) {
		t.Errorf("Start: %v, want the store's error", err)
	}
	if err := fs.Lead(context.Background(), "health", func(context.Context) {}); !errors.Is(err, boom) {
		t.Errorf("Lead: %v, want the store's error", err)
	}
	fs.Close()
	if want := []string{"attach", "start", "lead", "close"}; !slices.Equal(f.through, want) {
		t.Errorf("passed through: %v, want %v", f.through, want)
	}
	callAll(t, fs)
	for _, op := range storeOps {
		if got := value(t, reg, "maildirector_director_store_request_duration_seconds", "op", op, "result", "error"); got != 1 {
			t.Errorf("store op %s error: %v requests, want 1", op, got)
		}
		if got := value(t, reg, "maildirector_director_store_request_duration_seconds", "op", op, "result", "ok"); got != 1 {
			t.Errorf("store op %s ok changed to %v", op, got)
		}
	}
	if n := countSeries(t, reg, "maildirector_director_store_request_duration_seconds"); n != 2*len(storeOps) {
		t.Errorf("%d store series, want %d (no series for attach, start, lead or close)", n, 2*len(storeOps))
	}

	// Errors come back unchanged, values too.
	if _, err := fs.Hosts(context.Background()); !errors.Is(err, boom) {
		t.Errorf("Hosts through the decorator: %v", err)
	}
	if a, created, err := s.Claim(context.Background(), "u2", director.Assignment{Backend: "10.0.0.1", Expires: time.Now().Add(time.Hour)}, time.Now()); err != nil || !created || a.Backend != "10.0.0.1" {
		t.Errorf("Claim through the decorator: %+v %v %v", a, created, err)
	}
}

// The fakes of the gateway's state.

type fakeDirector struct {
	hosts  []director.HostRecord
	load   director.GatewayLoad
	stats  director.Stats
	fenced bool
}

func (d *fakeDirector) Hosts() []director.HostRecord { return d.hosts }
func (d *fakeDirector) Load() director.GatewayLoad   { return d.load }
func (d *fakeDirector) Stats() director.Stats        { return d.stats }
func (d *fakeDirector) IsFenced() bool               { return d.fenced }

type fakeSessions map[gateway.SessionKey]int

func (s fakeSessions) Counts() map[gateway.SessionKey]int { return s }

type fakePrelogin int64

func (p fakePrelogin) Prelogin() int64 { return int64(p) }

type fakeCache struct {
	hits, misses uint64
	n            int
}

func (c fakeCache) Stats() (uint64, uint64, int) { return c.hits, c.misses, c.n }

type fakeHealth struct {
	leading bool
	hosts   []health.HostHealth
}

func (h fakeHealth) Leading() bool                { return h.leading }
func (h fakeHealth) History() []health.HostHealth { return h.hosts }

// stateFamilies are the families the state collector makes.
var stateFamilies = []string{
	"maildirector_sessions", "maildirector_prelogin_connections",
	"maildirector_director_host_up", "maildirector_director_host_vhosts", "maildirector_director_host_drained", "maildirector_director_host_down_by_health",
	"maildirector_director_users", "maildirector_director_deliveries", "maildirector_director_fenced",
	"maildirector_director_moves_total", "maildirector_director_sessions_kicked_total", "maildirector_director_fencings_total",
	"maildirector_auth_cache_hits_total", "maildirector_auth_cache_misses_total", "maildirector_auth_cache_entries",
	"maildirector_health_checks_leading", "maildirector_health_check_up", "maildirector_health_check_duration_seconds", "maildirector_health_check_consecutive_failures",
}

func fakeSources() Sources {
	now := time.Now()
	return Sources{
		Director: &fakeDirector{
			hosts: []director.HostRecord{
				{Host: director.Host{IP: "10.0.0.1", VHosts: 100}},
				{Host: director.Host{IP: "10.0.0.2", Tag: "ssd", VHosts: 0, Down: true}, Drained: true, DrainedFrom: 100, DownBy: director.DownByHealth},
				{Host: director.Host{IP: "10.0.0.3", Tag: "ssd", VHosts: 20, Down: true}, DownBy: director.DownByOperator},
			},
			load: director.GatewayLoad{
				Sessions:   map[string]int{"10.0.0.1": 4},
				Deliveries: map[string]int{"10.0.0.1": 1},
				Users:      map[string]int{"10.0.0.1": 3},
			},
			stats: director.Stats{Moves: 4, SessionsKicked: 7, Fencings: 1},
		},
		// The registry keys sessions by the address dialled, port and all.
		Sessions: fakeSessions{
			{Service: "imap", Backend: "10.0.0.1:143"}:      3,
			{Service: "imap", Backend: "10.0.0.1:10143"}:    1,
			{Service: "pop3", Backend: "10.0.0.1:110"}:      1,
			{Service: "imap", Backend: "[2001:db8::1]:143"}: 2,
		},
		Listeners: []ListenerSource{
			{Protocol: "imap", Prelogin: fakePrelogin(2)},
			{Protocol: "imap", Prelogin: fakePrelogin(3)},
			{Protocol: "lmtp", Prelogin: fakePrelogin(1)},
			{Protocol: "sieve", Prelogin: fakePrelogin(0)},
		},
		Cache: fakeCache{hits: 10, misses: 4, n: 6},
		Health: fakeHealth{leading: true, hosts: []health.HostHealth{
			{IP: "10.0.0.1", Successes: 2, Results: []health.Result{
				{At: now.Add(-20 * time.Second), OK: false, Latency: 2 * time.Second, Error: "timeout"},
				{At: now.Add(-10 * time.Second), OK: true, Latency: 15 * time.Millisecond},
			}},
			{IP: "10.0.0.2", Down: true, DownByHealth: true, Failures: 3, Results: []health.Result{
				{At: now.Add(-10 * time.Second), OK: false, Latency: 1500 * time.Millisecond, Error: "connection refused"},
			}},
			{IP: "10.0.0.3", Down: true}, // never checked: no result to show
		}},
	}
}

func TestStateCollector(t *testing.T) {
	m := New()
	reg := m.Registry()

	// Before the gateway gives its sources, there is no state to show.
	for _, name := range stateFamilies {
		if n := countSeries(t, reg, name); n != 0 {
			t.Errorf("%s has %d series without sources", name, n)
		}
	}

	m.SetSources(fakeSources())
	want := `# TYPE maildirector_auth_cache_entries gauge
maildirector_auth_cache_entries 6
# TYPE maildirector_auth_cache_hits_total counter
maildirector_auth_cache_hits_total 10
# TYPE maildirector_auth_cache_misses_total counter
maildirector_auth_cache_misses_total 4
# TYPE maildirector_director_deliveries gauge
maildirector_director_deliveries{backend="10.0.0.1"} 1
maildirector_director_deliveries{backend="10.0.0.2"} 0
maildirector_director_deliveries{backend="10.0.0.3"} 0
# TYPE maildirector_director_fenced gauge
maildirector_director_fenced 0
# TYPE maildirector_director_fencings_total counter
maildirector_director_fencings_total 1
# TYPE maildirector_director_host_down_by_health gauge
maildirector_director_host_down_by_health{backend="10.0.0.1",tag=""} 0
maildirector_director_host_down_by_health{backend="10.0.0.2",tag="ssd"} 1
maildirector_director_host_down_by_health{backend="10.0.0.3",tag="ssd"} 0
# TYPE maildirector_director_host_drained gauge
maildirector_director_host_drained{backend="10.0.0.1",tag=""} 0
maildirector_director_host_drained{backend="10.0.0.2",tag="ssd"} 1
maildirector_director_host_drained{backend="10.0.0.3",tag="ssd"} 0
# TYPE maildirector_director_host_up gauge
maildirector_director_host_up{backend="10.0.0.1",tag=""} 1
maildirector_director_host_up{backend="10.0.0.2",tag="ssd"} 0
maildirector_director_host_up{backend="10.0.0.3",tag="ssd"} 0
# TYPE maildirector_director_host_vhosts gauge
maildirector_director_host_vhosts{backend="10.0.0.1",tag=""} 100
maildirector_director_host_vhosts{backend="10.0.0.2",tag="ssd"} 0
maildirector_director_host_vhosts{backend="10.0.0.3",tag="ssd"} 20
# TYPE maildirector_director_moves_total counter
maildirector_director_moves_total 4
# TYPE maildirector_director_sessions_kicked_total counter
maildirector_director_sessions_kicked_total 7
# TYPE maildirector_director_users gauge
maildirector_director_users{backend="10.0.0.1"} 3
maildirector_director_users{backend="10.0.0.2"} 0
maildirector_director_users{backend="10.0.0.3"} 0
# TYPE maildirector_health_check_consecutive_failures gauge
maildirector_health_check_consecutive_failures{backend="10.0.0.1"} 0
maildirector_health_check_consecutive_failures{backend="10.0.0.2"} 3
maildirector_health_check_consecutive_failures{backend="10.0.0.3"} 0
# TYPE maildirector_health_check_duration_seconds gauge
maildirector_health_check_duration_seconds{backend="10.0.0.1"} 0.015
maildirector_health_check_duration_seconds{backend="10.0.0.2"} 1.5
# TYPE maildirector_health_check_up gauge
maildirector_health_check_up{backend="10.0.0.1"} 1
maildirector_health_check_up{backend="10.0.0.2"} 0
# TYPE maildirector_health_checks_leading gauge
maildirector_health_checks_leading 1
# TYPE maildirector_prelogin_connections gauge
maildirector_prelogin_connections{protocol="imap"} 5
maildirector_prelogin_connections{protocol="lmtp"} 1
maildirector_prelogin_connections{protocol="sieve"} 0
# TYPE maildirector_sessions gauge
maildirector_sessions{backend="10.0.0.1",protocol="imap"} 4
maildirector_sessions{backend="10.0.0.1",protocol="pop3"} 1
maildirector_sessions{backend="2001:db8::1",protocol="imap"} 2
`
	if got := text(t, reg, stateFamilies...); got != want {
		t.Errorf("state metrics:\n%s\nwant:\n%s", got, want)
	}

	// A fenced gateway, a health checker that stopped leading, and a
	// reload that rebuilt the sources without a cache or health checks.
	src := fakeSources()
	src.Director.(*fakeDirector).fenced = true
	src.Cache, src.Health = nil, nil
	m.SetSources(src)
	if got := value(t, reg, "maildirector_director_fenced"); got != 1 {
		t.Errorf("director_fenced = %v while fenced", got)
	}
	for _, name := range []string{"maildirector_auth_cache_entries", "maildirector_health_checks_leading", "maildirector_health_check_up"} {
		if n := countSeries(t, reg, name); n != 0 {
			t.Errorf("%s: %d series from sources without it", name, n)
		}
	}
}

// TestLint: the registry, with every family holding a series, passes
// Prometheus's naming and help rules (promlint, as promtool check
// metrics).
func TestLint(t *testing.T) {
	m := New()
	m.SetSources(fakeSources())
	m.LoginDone("imap", gateway.LoginOK, time.Millisecond)
	m.BackendLogin("10.0.0.1", true, time.Millisecond)
	m.Relayed("imap", 1, 1)
	m.Penalized()
	m.LMTPRecipient("ok")
	m.Passdb()("static", "static", "ok", time.Millisecond)
	m.Reloaded(true)
	callAll(t, m.Store(memory.New()))

	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	ours := 0
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "maildirector_") {
			ours++
			if len(mf.GetMetric()) == 0 {
				t.Errorf("%s has no series in the lint run", mf.GetName())
			}
		}
	}
	if ours != 29 {
		t.Errorf("%d maildirector_ families, want 29 (10 event families, 19 state ones)", ours)
	}
}

// TestConcurrent: logins counted from many goroutines while the page and
// Prometheus read (run with -race).
func TestConcurrent(t *testing.T) {
	m, _ := newTest(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	m.SetSources(fakeSources())
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				m.LoginDone(fmt.Sprint("p", g%2), gateway.LoginOK, time.Duration(i))
				if i%25 == 0 {
					m.SetSources(fakeSources())
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			m.Logins()
			if _, err := m.Registry().Gather(); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if b := m.Logins()[buckets-1]; b.OK != 800 {
		t.Errorf("last bucket: %d ok, want 800", b.OK)
	}
	if got := value(t, m.Registry(), "maildirector_logins_total", "protocol", "p0", "result", "ok"); got != 400 {
		t.Errorf("logins_total{p0,ok} = %v, want 400", got)
	}
}
