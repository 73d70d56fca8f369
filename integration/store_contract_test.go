// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/etcdstore"
	"github.com/maildirector/maildirector/director/storetest"
	"github.com/maildirector/maildirector/integration/harness"
)

// TestStoreContractDebianEtcd runs the director store contract (the table
// the memory store and the embedded etcd pass in their unit tests) against
// Debian's etcd 3.4 as a child process. Its outage is a frozen server
// (SIGSTOP): connections stay open and nothing answers, as in a partition.
func TestStoreContractDebianEtcd(t *testing.T) {
	e := harness.StartEtcd(t)
	storetest.Run(t, storetest.Backend{
		Shared: true,
		Open: func(t *testing.T) director.Store {
			s, err := etcdstore.New(etcdstore.Config{
				Endpoints:   e.Endpoints(),
				Prefix:      "/contract/" + strings.ReplaceAll(t.Name(), "/", "_") + "/",
				DialTimeout: 2 * time.Second,
				LeaseTTL:    3 * time.Second,
				UserExpire:  10 * time.Second,
				Name:        t.Name(),
				Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Outage: func(t *testing.T) func() {
			e.Freeze()
			return e.Thaw
		},
	})
}
