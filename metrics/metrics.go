// SPDX-License-Identifier: Apache-2.0

// Package metrics counts what a gateway does for Prometheus
// (client_golang), under names prefixed maildirector_, and keeps the
// short login history the status page draws.
//
// Events on the login path (logins, backend logins, relayed bytes, LMTP
// recipients, database lookups, store calls) are counted as they happen,
// through gateway.Observer and the passdb/userdb/store hooks. Everything
// that is state (sessions, pre-login connections, backends, users,
// fencing, health, the auth cache) is read when Prometheus scrapes, from
// the Sources the gateway gives, so the hot path pays nothing for it.
package metrics

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/gateway"
)

const ns = "maildirector"

// Metrics is one gateway's metrics. Create it with New.
type Metrics struct {
	reg *prometheus.Registry

	logins       *prometheus.CounterVec
	loginSeconds *prometheus.HistogramVec
	backendLogin *prometheus.HistogramVec
	relayed      *prometheus.CounterVec
	penalized    prometheus.Counter
	lmtpRcpts    *prometheus.CounterVec
	lookups      *prometheus.HistogramVec
	storeOps     *prometheus.HistogramVec
	reloads      *prometheus.CounterVec
	lastReload   prometheus.Gauge

	history *history
	src     atomic.Pointer[Sources]
}

// Latency buckets: logins take milliseconds to a few seconds (a backend
// retried, a slow directory); the store answers in well under a second.
var (
	loginBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	fastBuckets  = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5}
)

// New returns metrics with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), history: newHistory(time.Now)}
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "logins_total",
		Help: "Login attempts that reached a verdict, by protocol and result (ok, auth_failed, tempfail, limit, aborted)."},
		[]string{"protocol", "result"})
	m.loginSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "login_duration_seconds",
		Help: "Time from the client's login command to the answer, by protocol and result.", Buckets: loginBuckets},
		[]string{"protocol", "result"})
	m.backendLogin = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "backend_login_duration_seconds",
		Help: "Time to connect to a backend and log in there, by backend and result (ok, failed).", Buckets: loginBuckets},
		[]string{"backend", "result"})
	m.relayed = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "relayed_bytes_total",
		Help: "Bytes relayed by ended sessions, by protocol and direction (in: from the client, out: to it)."},
		[]string{"protocol", "direction"})
	m.penalized = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "auth_penalty_delays_total",
		Help: "Logins held back because their address failed before (auth penalty)."})
	m.lmtpRcpts = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "lmtp_recipients_total",
		Help: "LMTP recipients by final answer (ok, tempfail, permfail)."}, []string{"result"})
	m.lookups = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "auth_lookup_duration_seconds",
		Help: "passdb/userdb lookups (cache hits included) by database kind, entry name, driver and outcome.", Buckets: fastBuckets},
		[]string{"db", "name", "driver", "result"})
	m.storeOps = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "director_store_request_duration_seconds",
		Help: "Director store requests by operation and result (ok, error).", Buckets: fastBuckets},
		[]string{"op", "result"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "config_reloads_total",
		Help: "Configuration reloads by result (ok, failed)."}, []string{"result"})
	m.lastReload = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "config_last_reload_success_timestamp_seconds",
		Help: "When the configuration was last loaded successfully (start or reload)."})
	m.lastReload.SetToCurrentTime()
	m.reg.MustRegister(m.logins, m.loginSeconds, m.backendLogin, m.relayed, m.penalized, m.lmtpRcpts, m.lookups, m.storeOps,
		m.reloads, m.lastReload, (*stateCollector)(m),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry the metrics live in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// SetSources tells the metrics where the gateway's state is now (again
// after a reload that rebuilt parts of it).
func (m *Metrics) SetSources(s Sources) { m.src.Store(&s) }

// Reloaded counts a configuration reload.
func (m *Metrics) Reloaded(ok bool) {
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
		m.lastReload.SetToCurrentTime()
		return
	}
	m.reloads.WithLabelValues("failed").Inc()
}

// LoginDone implements gateway.Observer.
func (m *Metrics) LoginDone(service string, r gateway.LoginResult, d time.Duration) {
	m.logins.WithLabelValues(service, string(r)).Inc()
	m.loginSeconds.WithLabelValues(service, string(r)).Observe(d.Seconds())
	m.history.add(r)
}

// BackendLogin implements gateway.Observer.
func (m *Metrics) BackendLogin(backend string, ok bool, d time.Duration) {
	result := "ok"
	if !ok {
		result = "failed"
	}
	m.backendLogin.WithLabelValues(backend, result).Observe(d.Seconds())
}

// Relayed implements gateway.Observer.
func (m *Metrics) Relayed(service string, fromClient, toClient int64) {
	m.relayed.WithLabelValues(service, "in").Add(float64(fromClient))
	m.relayed.WithLabelValues(service, "out").Add(float64(toClient))
}

// Penalized implements gateway.Observer.
func (m *Metrics) Penalized() { m.penalized.Inc() }

// LMTPRecipient implements gateway.Observer.
func (m *Metrics) LMTPRecipient(result string) { m.lmtpRcpts.WithLabelValues(result).Inc() }

// Passdb returns the hook a passdb chain reports its lookups to.
func (m *Metrics) Passdb() auth.ObserveFunc { return m.lookupHook("passdb") }

// Userdb returns the hook a userdb chain reports its lookups to.
func (m *Metrics) Userdb() auth.ObserveFunc { return m.lookupHook("userdb") }

func (m *Metrics) lookupHook(db string) auth.ObserveFunc {
	return func(name, driver, outcome string, d time.Duration) {
		m.lookups.WithLabelValues(db, name, driver, outcome).Observe(d.Seconds())
	}
}

var _ gateway.Observer = (*Metrics)(nil)
