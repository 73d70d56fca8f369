// SPDX-License-Identifier: Apache-2.0

package director

import (
	"fmt"
	"time"
)

// Event is something an operator wants to see happen on the cluster, as
// this gateway saw it: a backend's change, a move, fencing.
type Event struct {
	At   time.Time `json:"at"`
	Kind string    `json:"kind"` // "host", "health", "drain", "move", "fence"
	Host string    `json:"host,omitempty"`
	Text string    `json:"text"`
}

// maxEvents bounds the events a director remembers.
const maxEvents = 50

// Stats are the director's counters since it started.
type Stats struct {
	Moves          uint64 // moves (host down/flush/remove, user moves, kicks) carried out here
	SessionsKicked uint64 // sessions this gateway ended for moves and fencing
	Fencings       uint64 // times it was fenced off the store
}

// Events returns the remembered events, newest first.
func (d *Director) Events() []Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Event, len(d.events))
	for i, e := range d.events {
		out[len(out)-1-i] = e
	}
	return out
}

// Stats returns the director's counters.
func (d *Director) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

func (d *Director) eventLocked(kind, host, format string, args ...any) {
	if len(d.events) == maxEvents {
		copy(d.events, d.events[1:])
		d.events = d.events[:maxEvents-1]
	}
	d.events = append(d.events, Event{At: time.Now(), Kind: kind, Host: host, Text: fmt.Sprintf(format, args...)})
}

// hostEventsLocked records what changed between the backends known
// before and now (nothing on the first load: that is no change).
func (d *Director) hostEventsLocked(before, now map[string]HostRecord) {
	if before == nil {
		return
	}
	by := func(h HostRecord) string {
		if h.ChangedBy == "" {
			return ""
		}
		return " by " + h.ChangedBy
	}
	for ip, n := range now {
		o, ok := before[ip]
		switch {
		case !ok:
			d.eventLocked("host", ip, "added (vhosts %d)%s", n.VHosts, by(n))
			continue
		case n.Down && !o.Down:
			kind := "host"
			if n.DownBy == DownByHealth {
				kind = "health"
			}
			d.eventLocked(kind, ip, "down%s", by(n))
		case !n.Down && o.Down:
			kind := "host"
			if o.DownBy == DownByHealth {
				kind = "health"
			}
			d.eventLocked(kind, ip, "up%s", by(n))
		}
		switch {
		case n.Drained && !o.Drained:
			d.eventLocked("drain", ip, "drained (vhosts %d → 0)%s", n.DrainedFrom, by(n))
		case !n.Drained && o.Drained:
			d.eventLocked("drain", ip, "undrained (vhosts %d)%s", n.VHosts, by(n))
		case n.VHosts != o.VHosts:
			d.eventLocked("host", ip, "vhosts %d → %d%s", o.VHosts, n.VHosts, by(n))
		}
		if n.Tag != o.Tag {
			d.eventLocked("host", ip, "tag %q → %q%s", o.Tag, n.Tag, by(n))
		}
	}
	for ip := range before {
		if _, ok := now[ip]; !ok {
			d.eventLocked("host", ip, "removed")
		}
	}
}

func (d *Director) moveEventLocked(m Move) {
	what := "users of " + m.Backend
	if m.Key != "" {
		what = "user " + m.Key
	}
	switch {
	case m.Keep:
		d.eventLocked("move", m.Backend, "kick: %s (by %s)", what, orUnknown(m.By))
	case m.To != "":
		d.eventLocked("move", m.To, "%s: %s → %s (by %s)", m.Reason, what, m.To, orUnknown(m.By))
	default:
		d.eventLocked("move", m.Backend, "%s: %s (by %s)", m.Reason, what, orUnknown(m.By))
	}
}
