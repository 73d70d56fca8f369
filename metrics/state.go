// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/health"
	"github.com/maildirector/maildirector/gateway"
)

// Director is what the metrics read of the director at scrape time.
type Director interface {
	Hosts() []director.HostRecord
	Load() director.GatewayLoad
	Stats() director.Stats
	IsFenced() bool
}

// Sessions counts relayed sessions by service and backend.
type Sessions interface {
	Counts() map[gateway.SessionKey]int
}

// Prelogin counts one listener's connections before login.
type Prelogin interface {
	Prelogin() int64
}

// CacheStats is the auth cache's counters.
type CacheStats interface {
	Stats() (hits, misses uint64, entries int)
}

// Health is the health checker's view.
type Health interface {
	Leading() bool
	History() []health.HostHealth
}

// Sources are where the gateway's state is read from; nil fields are
// left out.
type Sources struct {
	Director Director
	Sessions Sessions
	// Listeners are the listeners now, with their protocol.
	Listeners []ListenerSource
	Cache     CacheStats
	Health    Health
	// Bounds is the server's pre-login bounds.
	Bounds PreloginBounds
}

// PreloginBounds reports the pre-login bounds' counters.
type PreloginBounds interface {
	PreloginStats() gateway.PreloginStats
}

// ListenerSource is one listener's protocol and pre-login count.
type ListenerSource struct {
	Protocol string
	Prelogin Prelogin
}

// stateCollector reads the Sources when Prometheus scrapes.
type stateCollector Metrics

var (
	dSessions    = desc("sessions", "Relayed sessions open now, by protocol and backend.", "protocol", "backend")
	dPLMax       = desc("prelogin_connections_max", "The bound on IMAP, POP3 and ManageSieve connections before login (limits.max_prelogin_connections).")
	dPLEvicted   = desc("prelogin_evictions_total", "Idle pre-login connections closed to make room for new ones (the busiest address's oldest first).")
	dPLRefused   = desc("prelogin_refusals_total", "Connections closed at once because the pre-login bounds were full and no connection was idle.")
	dPrelogin    = desc("prelogin_connections", "Client connections not (yet) relayed, by protocol (LMTP: all its connections).", "protocol")
	dHostUp      = desc("director_host_up", "1 if the backend takes users (not down), by backend and tag.", "backend", "tag")
	dHostVHosts  = desc("director_host_vhosts", "The backend's vhost count (its weight on the ring; 0: drained).", "backend", "tag")
	dHostDrained = desc("director_host_drained", "1 while the backend is drained.", "backend", "tag")
	dHostDownBy  = desc("director_host_down_by_health", "1 if the backend is down because health checks took it down.", "backend", "tag")
	dUsers       = desc("director_users", "Users this gateway serves now (with sessions or deliveries), by backend.", "backend")
	dDeliveries  = desc("director_deliveries", "LMTP deliveries and logins in flight on this gateway, by backend.", "backend")
	dFenced      = desc("director_fenced", "1 while this gateway is fenced off the director store (it admits nobody).")
	dMoves       = desc("director_moves_total", "Moves (host down, flush, remove, user moves, kicks) this gateway carried out.")
	dKicked      = desc("director_sessions_kicked_total", "Sessions this gateway ended for moves and fencing.")
	dFencings    = desc("director_fencings_total", "Times this gateway was fenced off the store.")
	dCacheHits   = desc("auth_cache_hits_total", "passdb lookups answered by a fresh auth cache entry.")
	dCacheMisses = desc("auth_cache_misses_total", "passdb lookups the auth cache could not answer.")
	dCacheSize   = desc("auth_cache_entries", "Entries in the auth cache.")
	dHealthLead  = desc("health_checks_leading", "1 while this gateway runs the cluster's health checks.")
	dHealthOK    = desc("health_check_up", "1 if the last health check of the backend passed (only on the gateway running them).", "backend")
	dHealthSec   = desc("health_check_duration_seconds", "How long the last health check of the backend took.", "backend")
	dHealthFails = desc("health_check_consecutive_failures", "Failed health checks of the backend in a row.", "backend")
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(ns, "", name), help, labels, nil)
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dPLMax, dPLEvicted, dPLRefused, dSessions, dPrelogin, dHostUp, dHostVHosts, dHostDrained, dHostDownBy, dUsers, dDeliveries,
		dFenced, dMoves, dKicked, dFencings, dCacheHits, dCacheMisses, dCacheSize, dHealthLead, dHealthOK, dHealthSec, dHealthFails} {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	src := (*Metrics)(c).src.Load()
	if src == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	if src.Sessions != nil {
		// The registry keys sessions by the address dialled, port and
		// all; every other backend label is the bare host, so that
		// sessions join with director_host_up and director_users.
		bySession := map[gateway.SessionKey]int{}
		for k, n := range src.Sessions.Counts() {
			if host, _, err := net.SplitHostPort(k.Backend); err == nil {
				k.Backend = host
			}
			bySession[k] += n
		}
		for k, n := range bySession {
			gauge(dSessions, float64(n), k.Service, k.Backend)
		}
	}
	prelogin := map[string]int64{}
	for _, l := range src.Listeners {
		prelogin[l.Protocol] += l.Prelogin.Prelogin()
	}
	for p, n := range prelogin {
		gauge(dPrelogin, float64(n), p)
	}
	if b := src.Bounds; b != nil {
		st := b.PreloginStats()
		gauge(dPLMax, float64(st.Max))
		counter(dPLEvicted, float64(st.Evicted))
		counter(dPLRefused, float64(st.Refused))
	}
	if d := src.Director; d != nil {
		hosts := d.Hosts()
		for _, h := range hosts {
			gauge(dHostUp, b2f(!h.Down), h.IP, h.Tag)
			gauge(dHostVHosts, float64(h.VHosts), h.IP, h.Tag)
			gauge(dHostDrained, b2f(h.Drained), h.IP, h.Tag)
			gauge(dHostDownBy, b2f(h.Down && h.DownBy == director.DownByHealth), h.IP, h.Tag)
		}
		// Every backend gets its users and deliveries, 0 included: a
		// series that vanishes when a backend empties breaks rate() and
		// alerts on it.
		load := d.Load()
		users, deliveries := map[string]int{}, map[string]int{}
		for _, h := range hosts {
			users[h.IP], deliveries[h.IP] = 0, 0
		}
		for ip, n := range load.Users {
			users[ip] += n
		}
		for ip, n := range load.Deliveries {
			deliveries[ip] += n
		}
		for ip, n := range users {
			gauge(dUsers, float64(n), ip)
		}
		for ip, n := range deliveries {
			gauge(dDeliveries, float64(n), ip)
		}
		gauge(dFenced, b2f(d.IsFenced()))
		st := d.Stats()
		counter(dMoves, float64(st.Moves))
		counter(dKicked, float64(st.SessionsKicked))
		counter(dFencings, float64(st.Fencings))
	}
	if src.Cache != nil {
		hits, misses, n := src.Cache.Stats()
		counter(dCacheHits, float64(hits))
		counter(dCacheMisses, float64(misses))
		gauge(dCacheSize, float64(n))
	}
	if h := src.Health; h != nil {
		gauge(dHealthLead, b2f(h.Leading()))
		for _, hh := range h.History() {
			gauge(dHealthFails, float64(hh.Failures), hh.IP)
			if len(hh.Results) == 0 {
				continue
			}
			last := hh.Results[len(hh.Results)-1]
			gauge(dHealthOK, b2f(last.OK), hh.IP)
			gauge(dHealthSec, last.Latency.Seconds(), hh.IP)
		}
	}
}
