// SPDX-License-Identifier: Apache-2.0

// Package embedded runs the etcd member a gateway keeps its director
// state in when no external etcd is configured (director.store: embedded,
// the default). Alone, the member listens on nothing but a UNIX socket in
// its data directory: no port to clash with a system etcd, and two
// gateways on one machine with two data directories just work. Members of
// several gateways may peer (peer_urls, initial_cluster) so that a small
// site needs no separate etcd.
//
// The data directory is locked while a member runs in it; tools that find
// it locked reach the running member through its socket instead.
package embedded

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Config configures a member.
type Config struct {
	DataDir string
	Name    string // member name ("default")
	// PeerURLs and InitialCluster peer this member with others; without
	// them it is alone.
	PeerURLs            []string
	ClientURLs          []string // TCP client URLs besides the socket
	InitialCluster      string
	InitialClusterState string // "new" (default) or "existing"
	// CA, Cert, Key protect peer and TCP client URLs (https): both sides
	// must show a certificate the CA signed.
	CA, Cert, Key string
}

// Member is a running etcd member.
type Member struct {
	etcd *embed.Etcd
	lock *os.File
	dir  string
}

// ErrInUse is returned when another process runs a member in the data
// directory: reach it through SocketPath.
var ErrInUse = errors.New("embedded etcd: the data directory is in use by a running maildirector")

// SocketPath is the member's client socket in dataDir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, "etcd.sock") }

// Endpoint is the client endpoint of the socket in dataDir.
func Endpoint(dataDir string) string { return "unix://" + SocketPath(dataDir) }

// lockDir takes the data directory's lock without waiting.
func lockDir(dataDir string) (*os.File, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dataDir, "maildirector.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrInUse
		}
		return nil, err
	}
	return f, nil
}

// InUse says whether a running process holds dataDir.
func InUse(dataDir string) bool {
	if _, err := os.Stat(filepath.Join(dataDir, "maildirector.lock")); err != nil {
		return false // never started here
	}
	f, err := lockDir(dataDir)
	if err != nil {
		return errors.Is(err, ErrInUse)
	}
	f.Close()
	return false
}

func parseURLs(ss []string) ([]url.URL, error) {
	var out []url.URL
	for _, s := range ss {
		u, err := url.Parse(s)
		if err != nil {
			return nil, err
		}
		out = append(out, *u)
	}
	return out, nil
}

// Start starts a member in cfg.DataDir. It returns once the member
// listens; a peered member serves once it has a quorum.
func Start(cfg Config) (*Member, error) {
	lock, err := lockDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			lock.Close()
		}
	}()
	sock := SocketPath(cfg.DataDir)
	if len(sock) > 100 {
		return nil, fmt.Errorf("embedded etcd: socket path %s is too long for a UNIX socket", sock)
	}
	os.Remove(sock) // left by a member that was killed; the lock says none runs
	ec := embed.NewConfig()
	ec.Dir = filepath.Join(cfg.DataDir, "etcd")
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// Every refresh and report is a new revision: without compaction the
	// member's database would grow for ever. An hour of history is plenty
	// for watches that reconnect.
	ec.AutoCompactionMode, ec.AutoCompactionRetention = "periodic", "1h"
	ec.Name = cfg.Name
	if ec.Name == "" {
		ec.Name = "default"
	}
	local, _ := url.Parse("unix://" + sock)
	ec.ListenClientUrls = []url.URL{*local}
	ec.AdvertiseClientUrls = []url.URL{*local}
	extra, err := parseURLs(cfg.ClientURLs)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: client_urls: %w", err)
	}
	ec.ListenClientUrls = append(ec.ListenClientUrls, extra...)
	ec.AdvertiseClientUrls = append(ec.AdvertiseClientUrls, extra...)
	if cfg.InitialCluster == "" {
		// Alone: the peer listener is a socket nobody dials.
		peer, _ := url.Parse("unix://" + filepath.Join(cfg.DataDir, "peer.sock"))
		ec.ListenPeerUrls = []url.URL{*peer}
		ec.AdvertisePeerUrls = []url.URL{*peer}
		ec.InitialCluster = ec.Name + "=" + peer.String()
	} else {
		peers, err := parseURLs(cfg.PeerURLs)
		if err != nil {
			return nil, fmt.Errorf("embedded etcd: peer_urls: %w", err)
		}
		ec.ListenPeerUrls, ec.AdvertisePeerUrls = peers, peers
		ec.InitialCluster = cfg.InitialCluster
		if cfg.InitialClusterState == "existing" {
			ec.ClusterState = embed.ClusterStateFlagExisting
		}
		ec.InitialClusterToken = "maildirector"
	}
	if cfg.Cert != "" {
		info := transport.TLSInfo{CertFile: cfg.Cert, KeyFile: cfg.Key, TrustedCAFile: cfg.CA, ClientCertAuth: cfg.CA != ""}
		ec.PeerTLSInfo = info
		ec.ClientTLSInfo = info
	}
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	if cfg.InitialCluster == "" {
		select {
		case <-e.Server.ReadyNotify():
		case err := <-e.Err():
			e.Close()
			return nil, fmt.Errorf("embedded etcd: %w", err)
		case <-time.After(time.Minute):
			e.Close()
			return nil, errors.New("embedded etcd: not ready after a minute")
		}
	}
	ok = true
	return &Member{etcd: e, lock: lock, dir: cfg.DataDir}, nil
}

// Client returns a client of the member's socket.
func (m *Member) Client() (*clientv3.Client, error) { return Dial(m.dir, nil) }

// Dial returns a client of the socket in dataDir (a member run by this
// process or by a running serve).
func Dial(dataDir string, tlsConfig *tls.Config) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{Endpoint(dataDir)},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		TLS:         tlsConfig,
	})
}

// Close stops the member and releases the data directory.
func (m *Member) Close() {
	m.etcd.Close()
	m.lock.Close()
}

// Wait waits until the member serves (a peered member: until it has a
// quorum) or ctx ends.
func (m *Member) Wait(ctx context.Context) error {
	select {
	case <-m.etcd.Server.ReadyNotify():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// IsSocket says whether endpoint is a UNIX socket endpoint.
func IsSocket(endpoint string) bool { return strings.HasPrefix(endpoint, "unix://") }
