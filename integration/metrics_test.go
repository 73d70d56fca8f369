// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/maildirector/maildirector/integration/harness"
)

// metricsEnv is a gateway with IMAP, POP3, ManageSieve and LMTP listeners
// and the admin listener (serving /metrics) in front of Dovecot backends.
type metricsEnv struct {
	*env
	pop3, sieve, lmtp string // listener addresses; e.gwAddr is IMAP's
	api               string
}

func startMetricsEnv(t *testing.T, ips []string) *metricsEnv {
	t.Helper()
	e := startBackends(t, ips, 30)
	e.backendTimeout = "2s"
	m := &metricsEnv{env: e}
	var addrs []string
	for range 5 {
		port, err := harness.FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(port))
	}
	e.gwAddr, m.pop3, m.sieve, m.lmtp, m.api = addrs[0], addrs[1], addrs[2], addrs[3], addrs[4]
	tokens := filepath.Join(e.dir, "admin-tokens")
	if err := os.WriteFile(tokens, []byte("prometheus "+adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	listeners := fmt.Sprintf("  - {protocol: imap, address: %q}\n  - {protocol: pop3, address: %q}\n  - {protocol: sieve, address: %q}\n  - {protocol: lmtp, address: %q}\n",
		e.gwAddr, m.pop3, m.sieve, m.lmtp)
	e.startGatewayWith(t, listeners, "proxy=y nopassword=y", trusted+fmt.Sprintf("admin:\n  listen: %q\n  token_file: %s\n", m.api, tokens))
	return m
}

// get fetches /metrics with the Authorization header auth ("" for none).
func (m *metricsEnv) get(t *testing.T, auth string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+m.api+"/metrics", nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// scrape is one read of /metrics, parsed.
type scrape struct {
	fams map[string]*dto.MetricFamily
	size int
}

func (m *metricsEnv) scrape(t *testing.T) scrape {
	t.Helper()
	status, body := m.get(t, "Bearer "+adminToken)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics with the token: %d %s", status, body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics is not in the text format: %v\n%s", err, body)
	}
	return scrape{fams: fams, size: len(body)}
}

// get returns the value of the series of name with exactly labels
// (name, value pairs): a counter's or gauge's value, a histogram's
// sample count.
func (s scrape) get(name string, labels ...string) (float64, bool) {
	for _, m := range s.fams[name].GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func hasLabels(m *dto.Metric, labels []string) bool {
	if len(m.GetLabel())*2 != len(labels) {
		return false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; !ok || v != lp.GetValue() {
			return false
		}
	}
	return true
}

// all renders every series of name as "{l1=v1,l2=v2}=value", sorted.
func (s scrape) all(name string) string {
	var out []string
	for _, m := range s.fams[name].GetMetric() {
		var ls []string
		for _, lp := range m.GetLabel() {
			ls = append(ls, lp.GetName()+"="+lp.GetValue())
		}
		v, _ := s.get(name, labelPairs(m)...)
		out = append(out, "{"+strings.Join(ls, ",")+"}="+strconv.FormatFloat(v, 'g', -1, 64))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func labelPairs(m *dto.Metric) []string {
	var out []string
	for _, lp := range m.GetLabel() {
		out = append(out, lp.GetName(), lp.GetValue())
	}
	return out
}

// series renders want as all does, for comparing a family exactly.
func series(want map[[2]string]float64, l1, l2 string) string {
	var out []string
	for k, v := range want {
		out = append(out, fmt.Sprintf("{%s=%s,%s=%s}=%s", l1, k[0], l2, k[1], strconv.FormatFloat(v, 'g', -1, 64)))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// waitMetrics scrapes until check finds nothing wrong ("") or within
// passes. The gateway counts a verdict right around the answer the client
// reads, so a scrape may come a moment early; it never comes late by more
// than that.
func (m *metricsEnv) waitMetrics(t *testing.T, within time.Duration, what string, check func(s scrape) string) scrape {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s := m.scrape(t)
		diff := check(s)
		if diff == "" {
			return s
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %s", what, diff)
			return s
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLogins waits until maildirector_logins_total is exactly want
// (protocol, result → count), no other series.
func (m *metricsEnv) waitLogins(t *testing.T, want map[[2]string]float64, what string) scrape {
	t.Helper()
	w := series(want, "protocol", "result")
	return m.waitMetrics(t, 3*time.Second, what, func(s scrape) string {
		if got := s.all("maildirector_logins_total"); got != w {
			return fmt.Sprintf("maildirector_logins_total\n got %s\nwant %s", got, w)
		}
		return ""
	})
}

// usersOn returns n test users the ring places on ip, skipping skip.
func (m *metricsEnv) usersOn(t *testing.T, ip string, n int, skip map[string]bool) []string {
	t.Helper()
	var out []string
	for i := 0; i < len(m.users) && len(out) < n; i++ {
		if u := userName(i); m.ringBackend(u) == ip && !skip[u] {
			out = append(out, u)
			skip[u] = true
		}
	}
	if len(out) < n {
		t.Fatalf("only %d test users on %s, want %d", len(out), ip, n)
	}
	return out
}

// TestMetricsCountLogins drives logins of every protocol through a real
// gateway and reads /metrics as Prometheus does: each login counted once
// with its result (wrong passwords the backend refused as auth_failed, a
// dead backend as tempfail), LMTP recipients by final answer, and the
// state gauges (sessions, pre-login connections, backends) matching what
// is open.
func TestMetricsCountLogins(t *testing.T) {
	const ip1, ip2 = "127.0.0.111", "127.0.0.112"
	m := startMetricsEnv(t, []string{ip1, ip2})

	// Behind the admin token, like the API.
	for _, auth := range []string{"", "Bearer wrong-token-0123456789abcdef", "Bearer " + adminToken[:len(adminToken)-1], adminToken} {
		if status, body := m.get(t, auth); status != http.StatusUnauthorized || strings.Contains(string(body), "maildirector_") {
			t.Errorf("GET /metrics with Authorization %q: %d %.60q, want 401 and no metrics", auth, status, body)
		}
	}

	// Before any login: no login series at all.
	first := m.scrape(t)
	if n := len(first.fams["maildirector_logins_total"].GetMetric()); n != 0 {
		t.Errorf("%d login series before any login: %s", n, first.all("maildirector_logins_total"))
	}

	// N good logins (each logs out) and M wrong passwords per protocol.
	// The static passdb lets every password through: the backend refuses
	// the wrong ones. Each wrong one comes from its own address, as
	// Dovecot's auth penalty (per client address, which the gateway
	// forwards) would otherwise delay the next.
	const good, bad = 5, 3
	logins := map[[2]string]float64{}
	badFrom := 0
	nextBad := func() string {
		badFrom++
		return fmt.Sprintf("127.0.9.%d", badFrom)
	}
	for i := range good {
		u := userName(i)
		c := dial(t, m.gwAddr, "")
		if st := c.login(u, password(u)); !strings.HasPrefix(st, "OK") {
			t.Fatalf("IMAP login %s: %q", u, st)
		}
		c.ok("LOGOUT")
		c.close()
		logins[[2]string{"imap", "ok"}]++

		u = userName(good + i)
		p := dialPOP3(t, m.pop3, "")
		if st := p.login(u, password(u)); !strings.HasPrefix(st, "+OK") {
			t.Fatalf("POP3 login %s: %q", u, st)
		}
		if st := p.cmd("QUIT"); !strings.HasPrefix(st, "+OK") {
			t.Fatalf("POP3 QUIT: %q", st)
		}
		p.close()
		logins[[2]string{"pop3", "ok"}]++

		u = userName(2*good + i)
		s := dialSieve(t, m.sieve, "")
		if st := s.authPlain(u, password(u)); !strings.HasPrefix(st, "OK") {
			t.Fatalf("ManageSieve login %s: %q", u, st)
		}
		if _, st := s.do("LOGOUT"); !strings.HasPrefix(st, "OK") {
			t.Fatalf("ManageSieve LOGOUT: %q", st)
		}
		s.close()
		logins[[2]string{"sieve", "ok"}]++
	}
	for i := range bad {
		u := userName(i)
		c := dial(t, m.gwAddr, nextBad())
		if st := c.login(u, "wrong"); st != "NO [AUTHENTICATIONFAILED] Authentication failed." {
			t.Fatalf("IMAP login with a wrong password: %q", st)
		}
		c.close()
		logins[[2]string{"imap", "auth_failed"}]++

		p := dialPOP3(t, m.pop3, nextBad())
		if st := p.login(u, "wrong"); st != "-ERR [AUTH] Authentication failed." {
			t.Fatalf("POP3 login with a wrong password: %q", st)
		}
		p.close()
		logins[[2]string{"pop3", "auth_failed"}]++

		s := dialSieve(t, m.sieve, nextBad())
		if st := s.authPlain(u, "wrong"); st != `NO "Authentication failed."` {
			t.Fatalf("ManageSieve login with a wrong password: %q", st)
		}
		s.close()
		logins[[2]string{"sieve", "auth_failed"}]++
	}
	// A client that cancels its SASL exchange ("*") reached a verdict
	// too: aborted, once.
	c := dial(t, m.gwAddr, "")
	c.send("a1 AUTHENTICATE PLAIN")
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("AUTHENTICATE PLAIN: %q, want a continuation", l)
	}
	c.send("*")
	if _, st := c.readUntil("a1"); !strings.HasPrefix(st, "BAD") {
		t.Errorf("IMAP AUTHENTICATE cancelled: %q, want BAD", st)
	}
	c.close()
	logins[[2]string{"imap", "aborted"}]++
	p := dialPOP3(t, m.pop3, "")
	if st := p.cmd("AUTH PLAIN"); !strings.HasPrefix(st, "+") {
		t.Fatalf("POP3 AUTH PLAIN: %q, want a continuation", st)
	}
	if st := p.cmd("*"); !strings.HasPrefix(st, "-ERR") {
		t.Errorf("POP3 AUTH cancelled: %q, want -ERR", st)
	}
	p.close()
	logins[[2]string{"pop3", "aborted"}]++
	s := dialSieve(t, m.sieve, "")
	s.send(`AUTHENTICATE "PLAIN"`)
	if l, err := s.r.ReadString('\n'); err != nil || l != "\"\"\r\n" {
		t.Fatalf("ManageSieve AUTHENTICATE: %q %v, want an empty challenge", l, err)
	}
	s.send(`"*"`)
	if _, st := s.response(); st != `NO "Authentication aborted by client."` {
		t.Errorf("ManageSieve AUTHENTICATE cancelled: %q", st)
	}
	s.close()
	logins[[2]string{"sieve", "aborted"}]++

	sc := m.waitLogins(t, logins, fmt.Sprintf("after %d good and %d wrong logins and a cancelled one per protocol", good, bad))
	t.Logf("after the logins: maildirector_logins_total %s", sc.all("maildirector_logins_total"))

	// Every login asked a backend: the good ones accepted, the wrong
	// ones refused there.
	m.waitMetrics(t, 3*time.Second, "backend logins", func(s scrape) string {
		var ok, failed float64
		for _, ip := range []string{ip1, ip2} {
			n, _ := s.get("maildirector_backend_login_duration_seconds", "backend", ip, "result", "ok")
			ok += n
			n, _ = s.get("maildirector_backend_login_duration_seconds", "backend", ip, "result", "failed")
			failed += n
		}
		if ok != 3*good || failed != 3*bad || len(s.fams["maildirector_backend_login_duration_seconds"].GetMetric()) > 4 {
			return fmt.Sprintf("%v ok, %v failed, want %d and %d: %s", ok, failed, 3*good, 3*bad, s.all("maildirector_backend_login_duration_seconds"))
		}
		return ""
	})
	// Ended sessions count their bytes.
	m.waitMetrics(t, 3*time.Second, "relayed bytes", func(s scrape) string {
		for _, p := range []string{"imap", "pop3", "sieve"} {
			in, _ := s.get("maildirector_relayed_bytes_total", "protocol", p, "direction", "in")
			out, _ := s.get("maildirector_relayed_bytes_total", "protocol", p, "direction", "out")
			if in == 0 || out == 0 {
				return fmt.Sprintf("%s: %v in, %v out after %d sessions ended: %s", p, in, out, good, s.all("maildirector_relayed_bytes_total"))
			}
		}
		return ""
	})

	// State while sessions are open: IMAP sessions on both backends, a
	// POP3 one, and connections that have not logged in.
	taken := map[string]bool{}
	on1, on2 := m.usersOn(t, ip1, 4, taken), m.usersOn(t, ip2, 2, taken)
	var open []func()
	hold := func(c interface{ close() }) { open = append(open, c.close) }
	for _, u := range append(append([]string{}, on1[:3]...), on2...) {
		c := dial(t, m.gwAddr, "")
		hold(c)
		if st := c.login(u, password(u)); !strings.HasPrefix(st, "OK") {
			t.Fatalf("IMAP login %s: %q", u, st)
		}
		c.ok("NOOP")
		logins[[2]string{"imap", "ok"}]++
	}
	p = dialPOP3(t, m.pop3, "")
	hold(p)
	if st := p.login(on1[3], password(on1[3])); !strings.HasPrefix(st, "+OK") {
		t.Fatalf("POP3 login %s: %q", on1[3], st)
	}
	logins[[2]string{"pop3", "ok"}]++
	idleIMAP := dial(t, m.gwAddr, "")
	hold(idleIMAP)
	idleSieve := dialSieve(t, m.sieve, "")
	hold(idleSieve)

	gauges := map[string]float64{
		`maildirector_sessions{backend="` + ip1 + `",protocol="imap"}`:     3,
		`maildirector_sessions{backend="` + ip2 + `",protocol="imap"}`:     2,
		`maildirector_sessions{backend="` + ip1 + `",protocol="pop3"}`:     1,
		`maildirector_prelogin_connections{protocol="imap"}`:               1,
		`maildirector_prelogin_connections{protocol="pop3"}`:               0,
		`maildirector_prelogin_connections{protocol="sieve"}`:              1,
		`maildirector_prelogin_connections{protocol="lmtp"}`:               0,
		`maildirector_director_host_up{backend="` + ip1 + `",tag=""}`:      1,
		`maildirector_director_host_up{backend="` + ip2 + `",tag=""}`:      1,
		`maildirector_director_host_vhosts{backend="` + ip1 + `",tag=""}`:  100,
		`maildirector_director_host_drained{backend="` + ip2 + `",tag=""}`: 0,
		`maildirector_director_users{backend="` + ip1 + `"}`:               4,
		`maildirector_director_users{backend="` + ip2 + `"}`:               2,
		`maildirector_director_deliveries{backend="` + ip1 + `"}`:          0,
		`maildirector_director_fenced`:                                     0,
	}
	sc = m.waitMetrics(t, 5*time.Second, "state with 5 IMAP sessions, 1 POP3 session and 2 connections before login", func(s scrape) string {
		var diffs []string
		for k, want := range gauges {
			name, labels := parseSeriesName(k)
			if got, ok := s.get(name, labels...); !ok || got != want {
				diffs = append(diffs, fmt.Sprintf("%s = %v (present %v), want %v", k, got, ok, want))
			}
		}
		if n := len(s.fams["maildirector_sessions"].GetMetric()); n != 3 {
			diffs = append(diffs, fmt.Sprintf("%d session series, want 3: %s", n, s.all("maildirector_sessions")))
		}
		sort.Strings(diffs)
		return strings.Join(diffs, "; ")
	})
	if g, ok := sc.get("go_goroutines"); !ok || g < 10 {
		t.Errorf("go_goroutines = %v (present %v), want a live gateway's (10 or more)", g, ok)
	}
	// Each relayed session holds two sockets, each waiting connection one.
	if fds, ok := sc.get("process_open_fds"); !ok || fds < 2*6+2 {
		t.Errorf("process_open_fds = %v (present %v), want at least %d", fds, ok, 2*6+2)
	}
	if start, ok := sc.get("process_start_time_seconds"); !ok || time.Since(time.Unix(int64(start), 0)) > 10*time.Minute {
		t.Errorf("process_start_time_seconds = %v (present %v)", start, ok)
	}
	m.waitLogins(t, logins, "with the sessions open")
	for _, c := range open {
		c()
	}
	m.waitMetrics(t, 5*time.Second, "after the sessions ended", func(s scrape) string {
		if n := len(s.fams["maildirector_sessions"].GetMetric()); n != 0 {
			return fmt.Sprintf("sessions still shown: %s", s.all("maildirector_sessions"))
		}
		for _, p := range []string{"imap", "pop3", "sieve", "lmtp"} {
			if n, ok := s.get("maildirector_prelogin_connections", "protocol", p); !ok || n != 0 {
				return fmt.Sprintf("prelogin_connections{%s} = %v (present %v), want 0", p, n, ok)
			}
		}
		return ""
	})

	// LMTP: one message to a recipient on each backend and one the
	// backends do not know (refused at RCPT: permfail).
	lmtp := dialLMTP(t, m.lmtp, "")
	if r := lmtp.cmd("LHLO mta.example.org"); !strings.HasPrefix(r, "250 ") {
		t.Fatal(r)
	}
	rcpts := []string{on1[0], "nobody@example.com", on2[0]}
	rcptReplies, dataReplies := lmtp.deliver("sender@example.org", rcpts, message("metrics-1@test", "counted"))
	if !strings.HasPrefix(rcptReplies[0], "250") || !strings.HasPrefix(rcptReplies[1], "550 5.1.1") || !strings.HasPrefix(rcptReplies[2], "250") {
		t.Fatalf("RCPT replies %q, want 250, 550 5.1.1, 250", rcptReplies)
	}
	if len(dataReplies) != 2 || !strings.HasPrefix(dataReplies[0], "250") || !strings.HasPrefix(dataReplies[1], "250") {
		t.Fatalf("DATA replies %q, want two 250", dataReplies)
	}
	lmtpWant := map[string]float64{"ok": 2, "permfail": 1}
	checkLMTP := func(what string) {
		t.Helper()
		var parts []string
		for r, n := range lmtpWant {
			parts = append(parts, fmt.Sprintf("{result=%s}=%v", r, n))
		}
		sort.Strings(parts)
		w := strings.Join(parts, " ")
		m.waitMetrics(t, 3*time.Second, what, func(s scrape) string {
			if got := s.all("maildirector_lmtp_recipients_total"); got != w {
				return fmt.Sprintf("maildirector_lmtp_recipients_total\n got %s\nwant %s", got, w)
			}
			return ""
		})
	}
	checkLMTP("after one message to 2 known recipients and 1 unknown")

	// A dead backend: its users' logins are temporary failures, in every
	// protocol, and so is a recipient there.
	m.backendByIP(ip2).Kill()
	u := on2[1]
	c = dial(t, m.gwAddr, "")
	if st := c.login(u, password(u)); st != "NO [UNAVAILABLE] Temporary authentication failure." {
		t.Errorf("IMAP login to a dead backend: %q, want NO [UNAVAILABLE]", st)
	}
	c.close()
	logins[[2]string{"imap", "tempfail"}]++
	p = dialPOP3(t, m.pop3, "")
	if st := p.login(u, password(u)); st != "-ERR [SYS/TEMP] Temporary authentication failure." {
		t.Errorf("POP3 login to a dead backend: %q", st)
	}
	p.close()
	logins[[2]string{"pop3", "tempfail"}]++
	s = dialSieve(t, m.sieve, "")
	if st := s.authPlain(u, password(u)); st != `NO (TRYLATER) "Temporary authentication failure."` {
		t.Errorf("ManageSieve login to a dead backend: %q", st)
	}
	s.close()
	logins[[2]string{"sieve", "tempfail"}]++
	m.waitLogins(t, logins, "after logins to a dead backend")

	rcptReplies, _ = lmtp.deliver("sender@example.org", []string{u}, message("metrics-2@test", "not deliverable now"))
	if len(rcptReplies) != 1 || !strings.HasPrefix(rcptReplies[0], "4") {
		t.Errorf("RCPT to a user of a dead backend: %q, want 4xx", rcptReplies)
	}
	lmtp.cmd("QUIT")
	lmtp.close()
	lmtpWant["tempfail"]++
	checkLMTP("after a recipient on a dead backend")

	// The director was not told (no health checks here): both backends
	// still count as up; the failed backend logins are on record.
	sc = m.waitMetrics(t, 3*time.Second, "backend logins to the dead backend", func(s scrape) string {
		if n, _ := s.get("maildirector_backend_login_duration_seconds", "backend", ip2, "result", "failed"); n < 3 {
			return fmt.Sprintf("%v failed backend logins on %s, want at least 3 (the 3 logins after the kill): %s",
				n, ip2, s.all("maildirector_backend_login_duration_seconds"))
		}
		return ""
	})
	if up, ok := sc.get("maildirector_director_host_up", "backend", ip2, "tag", ""); !ok || up != 1 {
		t.Errorf("director_host_up{%s} = %v (present %v), want 1: nobody took it down", ip2, up, ok)
	}

	// The status page's login history counts the same logins.
	var total float64
	for _, mm := range sc.fams["maildirector_logins_total"].GetMetric() {
		total += mm.GetCounter().GetValue()
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+m.api+"/api/v1/activity", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var activity struct {
		Logins []map[string]any `json:"logins"`
	}
	err = json.NewDecoder(resp.Body).Decode(&activity)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/activity: %d %v", resp.StatusCode, err)
	}
	var inHistory float64
	for _, b := range activity.Logins {
		for _, k := range []string{"ok", "auth_failed", "tempfail", "limit", "aborted"} {
			n, _ := b[k].(float64)
			inHistory += n
		}
	}
	if len(activity.Logins) != 90 || inHistory != total {
		t.Errorf("/api/v1/activity: %d buckets holding %v logins; want 90 buckets and the %v logins of maildirector_logins_total",
			len(activity.Logins), inHistory, total)
	}

	ours := 0
	for name, f := range sc.fams {
		if strings.HasPrefix(name, "maildirector_") {
			ours += len(f.GetMetric())
		}
	}
	t.Logf("/metrics: %d bytes, %d families, %d maildirector_ series", sc.size, len(sc.fams), ours)
	t.Logf("at the end: maildirector_logins_total %s; maildirector_lmtp_recipients_total %s",
		sc.all("maildirector_logins_total"), sc.all("maildirector_lmtp_recipients_total"))
}

// parseSeriesName splits `name{a="x",b="y"}` into the name and label pairs.
func parseSeriesName(s string) (string, []string) {
	name, rest, ok := strings.Cut(s, "{")
	if !ok {
		return s, nil
	}
	var labels []string
	for _, kv := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
		k, v, _ := strings.Cut(kv, "=")
		labels = append(labels, k, strings.Trim(v, `"`))
	}
	return name, labels
}
