// SPDX-License-Identifier: Apache-2.0

package etcdstore_test

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/embedded"
	"github.com/maildirector/maildirector/director/store/etcdstore"
	"github.com/maildirector/maildirector/director/storetest"
)

// TestContract runs the store contract against a real etcd: the member
// serve embeds, started in this process in a temporary directory.
func TestContract(t *testing.T) {
	dir := t.TempDir()
	m, err := embedded.Start(embedded.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			m.Close()
		}
	})
	storetest.Run(t, storetest.Backend{
		Shared: true,
		Open: func(t *testing.T) director.Store {
			return Open(t, []string{embedded.Endpoint(dir)}, 3*time.Second)
		},
		Outage: func(t *testing.T) func() {
			m.Close()
			stopped = true
			return func() {
				var err error
				m, err = embedded.Start(embedded.Config{DataDir: dir})
				if err != nil {
					t.Fatal(err)
				}
				stopped = false
			}
		},
	})
}

// Open returns a store client of endpoints under a prefix of the test's
// own, so that subtests do not see each other.
func Open(t *testing.T, endpoints []string, leaseTTL time.Duration) director.Store {
	s, err := etcdstore.New(etcdstore.Config{
		Endpoints:   endpoints,
		Prefix:      "/test/" + strings.ReplaceAll(t.Name(), "/", "_") + "/",
		DialTimeout: 2 * time.Second,
		LeaseTTL:    leaseTTL,
		UserExpire:  10 * time.Second,
		Name:        t.Name(),
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
