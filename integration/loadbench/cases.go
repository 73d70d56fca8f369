// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"strings"
)

// row is one line of a case's table: a value of a measurement.
type row struct {
	label string
	unit  string
	// lower says lower is better (latency, memory, CPU).
	lower bool
	m     *measurement
	value string
}

// benchCase is one of the cases --cases picks: its rows, its columns (the
// targets) and the ratios it prints.
type benchCase struct {
	name, title string
	rows        []row
	// targets are the columns (the run's targets when nil).
	targets func() []*target
	// ratios are the quotients printed, numerator ÷ denominator.
	ratios [][2]string
	// prepare runs before the case, finish after it.
	prepare func() error
	finish  func()
}

// caseNames are the cases in the order they run.
var caseNames = []string{"login", "latency", "cpu", "lmtp", "fetch", "idle", "cluster"}

// protoNames label protocols in the tables.
var protoNames = map[string]string{"imap": "IMAP", "pop3": "POP3", "sieve": "ManageSieve"}

// loginCmd names each protocol's login.
var loginCmd = map[string]string{"imap": "LOGIN", "pop3": "USER/PASS", "sieve": "AUTHENTICATE PLAIN"}

// mainRatios are the quotients of the cases run against every target.
var mainRatios = [][2]string{
	{maildirector, direct}, {dovecotDir, direct}, {nginx, direct},
	{maildirector, dovecotDir}, {maildirector, nginx},
}

// measure returns the measurement for key, made once: rows of several
// cases share it.
func (e *env) measure(key string, cannot func(*target) string, run func(*target) obs) *measurement {
	if m, ok := e.measurements[key]; ok {
		return m
	}
	m := &measurement{key: key, cannot: cannot, run: run}
	e.measurements[key] = m
	return m
}

// offers is a cannot function: the target must offer protocol p.
func offers(p string) func(*target) string {
	return func(t *target) string {
		if why := t.cannot[p]; why != "" {
			return why
		}
		if t.addrs != nil && t.addrs[p] == "" {
			return "no " + p + " listener"
		}
		return ""
	}
}

// login is the measurement of proto's whole logins by clients in parallel.
func (e *env) login(proto string, clients int) *measurement {
	return e.measure(fmt.Sprintf("login %s %d", proto, clients), offers(proto), func(t *target) obs {
		return e.loginRun(t, proto, clients, func(n int64) (string, string, error) {
			u := e.users[int(n)%len(e.users)]
			return u, e.addr(t, proto, u), nil
		})
	})
}

func clientsLabel(n int) string {
	if n == 1 {
		return "1 client"
	}
	return fmt.Sprintf("%d clients", n)
}

// cases builds the cases.
func (e *env) cases() map[string]*benchCase {
	cs := map[string]*benchCase{}
	protos := []string{"imap", "pop3", "sieve"}

	c := &benchCase{name: "login", title: "Login rates (connect, greeting, login, logout; a connection per login)", ratios: mainRatios}
	for _, p := range protos {
		for _, n := range []int{1, 32} {
			c.rows = append(c.rows, row{label: fmt.Sprintf("%s logins/s, %s", protoNames[p], clientsLabel(n)), unit: "logins/s", m: e.login(p, n), value: "rate"})
		}
	}
	cs[c.name] = c

	c = &benchCase{name: "latency", title: "IMAP login latency, 32 clients (ms)", ratios: mainRatios}
	for _, q := range []string{"p50", "p90", "p99"} {
		c.rows = append(c.rows, row{label: "IMAP LOGIN round trip " + q, unit: "ms", lower: true, m: e.login("imap", 32), value: "login_" + q})
	}
	for _, q := range []string{"p50", "p90", "p99"} {
		c.rows = append(c.rows, row{label: "IMAP connect to LOGIN OK " + q, unit: "ms", lower: true, m: e.login("imap", 32), value: "whole_" + q})
	}
	cs[c.name] = c

	c = &benchCase{name: "cpu", title: "CPU time per login, 32 clients (µs; the proxy's processes, the two backends', the load generator's)",
		ratios: mainRatios}
	for _, p := range protos {
		c.rows = append(c.rows,
			row{label: fmt.Sprintf("proxy CPU per %s login", protoNames[p]), unit: "µs", lower: true, m: e.login(p, 32), value: "proxy_cpu"},
			row{label: fmt.Sprintf("backends' CPU per %s login", protoNames[p]), unit: "µs", lower: true, m: e.login(p, 32), value: "backend_cpu"})
	}
	c.rows = append(c.rows, row{label: "load generator CPU per IMAP login", unit: "µs", lower: true, m: e.login("imap", 32), value: "client_cpu"})
	cs[c.name] = c

	lm := e.measure("lmtp", offers("lmtp"), e.lmtpRun)
	cs["lmtp"] = &benchCase{name: "lmtp", title: "LMTP, 8 clients, 2 recipients per message (one on each backend), a connection per message; straight to the backends a message is two deliveries",
		ratios: mainRatios,
		rows: []row{
			{label: "LMTP messages/s", unit: "msg/s", m: lm, value: "rate"},
			{label: "proxy CPU per message", unit: "µs", lower: true, m: lm, value: "proxy_cpu"},
			{label: "backends' CPU per message", unit: "µs", lower: true, m: lm, value: "backend_cpu"},
		}}

	c = &benchCase{name: "fetch", title: "One client moving a 10 MB message over one logged-in IMAP session (MB/s, 10^6 bytes; the proxy's CPU time per MB moved)", ratios: mainRatios, prepare: e.prepareFetch}
	for _, op := range []string{"FETCH", "APPEND"} {
		for _, useTLS := range []bool{false, true} {
			p, label := "imap", "plain"
			if useTLS {
				p, label = "imaps", "TLS (implicit, imaps)"
			}
			appending := op == "APPEND"
			m := e.measure(fmt.Sprintf("transfer %s %s", op, p), offers(p), func(t *target) obs { return e.transferRun(t, useTLS, appending) })
			c.rows = append(c.rows, row{label: fmt.Sprintf("%s 10 MB, %s", op, label), unit: "MB/s", m: m, value: "mbps"},
				row{label: fmt.Sprintf("proxy CPU per MB, %s %s", op, label), unit: "µs", lower: true, m: m, value: "proxy_cpu"},
				row{label: fmt.Sprintf("backends' CPU per MB, %s %s", op, label), unit: "µs", lower: true, m: m, value: "backend_cpu"},
				row{label: fmt.Sprintf("load generator CPU per MB, %s %s", op, label), unit: "µs", lower: true, m: m, value: "client_cpu"})
		}
	}
	cs[c.name] = c

	c = &benchCase{name: "idle", title: fmt.Sprintf("%d idle logged-in IMAP sessions, INBOX selected: the proxy's PSS (all its processes) and fds, per session", e.o.sessions),
		ratios: [][2]string{{maildirector, dovecotDir}, {maildirector, nginx}}}
	for _, useTLS := range []bool{false, true} {
		p, label := "imap", "plain"
		if useTLS {
			p, label = "imaps", "imaps"
		}
		cannot := func(t *target) string {
			if t.pids == nil || t.restart == nil {
				return "no proxy in between"
			}
			return offers(p)(t)
		}
		m := e.measure("idle "+p, cannot, func(t *target) obs { return e.idleRun(t, useTLS) })
		c.rows = append(c.rows,
			row{label: "KiB PSS per idle session, " + label, unit: "KiB", lower: true, m: m, value: "pss"},
			row{label: "fds per idle session, " + label, unit: "fds", lower: true, m: m, value: "fds"})
	}
	cs[c.name] = c

	cs["cluster"] = e.clusterCase()
	return cs
}

// parseCases checks a --cases list.
func parseCases(s string) ([]string, error) {
	if s == "" || s == "all" {
		return caseNames, nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		ok := false
		for _, k := range caseNames {
			ok = ok || k == n
		}
		if !ok {
			return nil, fmt.Errorf("unknown case %q (cases: %s)", n, strings.Join(caseNames, ","))
		}
		want[n] = true
	}
	// Always in caseNames' order: idle, whose thousand sessions are the
	// heaviest on the backends, comes after the rates.
	var out []string
	for _, k := range caseNames {
		if want[k] {
			out = append(out, k)
		}
	}
	return out, nil
}
