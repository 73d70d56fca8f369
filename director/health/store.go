// SPDX-License-Identifier: Apache-2.0

package health

import (
	"context"

	"github.com/maildirector/maildirector/director"
)

// StoreHosts is Hosts over a director.Store, with the director's health
// operations: a host-down is the safe move of director.HealthDown, marked
// DownBy "health" with the reason in the host's health history; an up is
// director.HealthUp, which leaves a host an operator took down as it is.
type StoreHosts struct {
	Store director.Store
	// Gateway, when set, names the gateway in the reasons the store keeps.
	Gateway string
}

// Hosts implements Hosts.
func (s StoreHosts) Hosts(ctx context.Context) ([]director.HostRecord, error) {
	return s.Store.Hosts(ctx)
}

// DownByHealth implements Hosts.
func (s StoreHosts) DownByHealth(h director.HostRecord) bool {
	return h.Down && h.DownBy == director.DownByHealth
}

// Down implements Hosts.
func (s StoreHosts) Down(ctx context.Context, ip, reason string) error {
	return director.HealthDown(ctx, s.Store, ip, s.reason(reason))
}

// Up implements Hosts.
func (s StoreHosts) Up(ctx context.Context, ip, reason string) error {
	up, err := director.HealthUp(ctx, s.Store, ip, s.reason(reason))
	if err == nil && !up {
		err = ErrNotOurs
	}
	return err
}

func (s StoreHosts) reason(r string) string {
	if s.Gateway != "" {
		r += " (checked by " + s.Gateway + ")"
	}
	return r
}
