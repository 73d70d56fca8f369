// SPDX-License-Identifier: Apache-2.0

package etcdstore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"
	"unsafe"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/embedded"
)

// nopCluster is a director.Cluster that does nothing.
type nopCluster struct{}

func (nopCluster) HostsChanged([]director.HostRecord)         {}
func (nopCluster) Evict(context.Context, director.Move) error { return nil }
func (nopCluster) MoveEnded(string)                           {}
func (nopCluster) Fenced(bool)                                {}
func (nopCluster) Load() director.GatewayLoad                 { return director.GatewayLoad{} }
func (nopCluster) UserLoad(string) director.UserLoad          { return director.UserLoad{} }

// More assignments than one page: load and Range read them all, at one
// revision, and the mirror's backend names share the host's string.
func TestLoadReadsInPages(t *testing.T) {
	dir := t.TempDir()
	m, err := embedded.Start(embedded.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	s, err := New(Config{Endpoints: []string{embedded.Endpoint(dir)}, Prefix: "/paged/", DialTimeout: 2 * time.Second,
		LeaseTTL: 3 * time.Second, UserExpire: time.Minute, Name: "t", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s.Attach(nopCluster{})
	ctx := context.Background()
	n := 2*loadPage + 17
	exp := time.Now().Add(time.Hour)
	if _, err := s.cli.Put(ctx, s.hostKey("127.0.0.9"), `{"ip":"127.0.0.9","vhosts":100}`); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += maxBatch {
		var ops []clientv3.Op
		for j := i; j < min(n, i+maxBatch); j++ {
			ops = append(ops, clientv3.OpPut(s.userKey(fmt.Sprintf("/u%06d", j)), encodeAssignment(director.Assignment{Backend: "127.0.0.9", Expires: exp})))
		}
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.load(ctx); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	got, host := len(s.users), s.hosts["127.0.0.9"].IP
	e := s.users[fmt.Sprintf("/u%06d", n-1)]
	s.mu.Unlock()
	if got != n {
		t.Errorf("the mirror holds %d users, want %d", got, n)
	}
	if e.a.Backend != "127.0.0.9" || unsafeData(e.a.Backend) != unsafeData(host) {
		t.Errorf("the last user's backend %q does not share the host's name", e.a.Backend)
	}
	ranged := 0
	if err := s.Range(ctx, func(string, director.Assignment) bool { ranged++; return true }); err != nil {
		t.Fatal(err)
	}
	if ranged != n {
		t.Errorf("Range saw %d users, want %d", ranged, n)
	}
	ranged = 0
	s.Range(ctx, func(string, director.Assignment) bool { ranged++; return ranged < 3 })
	if ranged != 3 {
		t.Errorf("Range went on after fn said stop: %d calls", ranged)
	}
}

// The mirror's map is rebuilt once the users fall under a quarter of
// their peak, and keeps everybody still there.
func TestMirrorShrinks(t *testing.T) {
	s := &Store{users: map[string]entry{}}
	n := 4 * shrinkBelow
	for i := 0; i < n; i++ {
		s.setUserLocked(fmt.Sprint(i), entry{mod: int64(i)})
	}
	if s.usersPeak != n {
		t.Fatalf("peak %d, want %d", s.usersPeak, n)
	}
	before := s.users
	for i := 0; i < n-n/4+1; i++ {
		s.deleteUserLocked(fmt.Sprint(i))
	}
	if fmt.Sprintf("%p", before) == fmt.Sprintf("%p", s.users) {
		t.Error("the map was not rebuilt")
	}
	if len(s.users) != n/4-1 || s.usersPeak != n/4-1 {
		t.Errorf("after the rebuild: %d users, peak %d", len(s.users), s.usersPeak)
	}
	for i := n - n/4 + 1; i < n; i++ {
		if _, ok := s.users[fmt.Sprint(i)]; !ok {
			t.Fatalf("user %d lost in the rebuild", i)
		}
	}
	// An older write does not replace a newer one.
	s.setUserLocked(fmt.Sprint(n-1), entry{mod: 1})
	if s.users[fmt.Sprint(n-1)].mod != int64(n-1) {
		t.Error("an older revision replaced a newer one")
	}
}

// unsafeData is the address of s's bytes.
func unsafeData(s string) *byte { return unsafe.StringData(s) }
