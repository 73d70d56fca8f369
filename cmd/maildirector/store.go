// SPDX-License-Identifier: Apache-2.0

package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/maildirector/maildirector/config"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/embedded"
	"github.com/maildirector/maildirector/director/store/etcdstore"
	"github.com/maildirector/maildirector/director/store/memory"
)

// openedStore is a director store and what must be stopped with it.
type openedStore struct {
	store  director.Store
	member *embedded.Member
	// where says what was opened, for messages.
	where string
}

func (o *openedStore) Close() {
	o.store.Close()
	if o.member != nil {
		o.member.Close()
	}
}

// errNoStore: a tool found no store to read (an embedded one that was
// never started, or a peered one whose gateway is not running).
var errNoStore = errors.New("no director store to read")

// openStore opens the store cfg names. serve (asGateway) starts the
// embedded member; a tool reaches the member of a running serve through
// its socket, and starts one for its own duration only when nothing runs
// in the data directory (never for a peered member: it would join the
// cluster).
func openStore(cfg *config.Config, log *slog.Logger, asGateway bool) (*openedStore, error) {
	d := cfg.Director
	name := d.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	scfg := etcdstore.Config{
		Prefix:      d.Etcd.Prefix,
		DialTimeout: d.Etcd.DialTimeout,
		LeaseTTL:    d.LeaseTTL,
		UserExpire:  d.UserExpire,
		Name:        name,
		Logger:      log,
	}
	switch d.Store {
	case "memory":
		return &openedStore{store: memory.New(), where: "memory"}, nil
	case "etcd":
		tlsConfig, err := etcdTLS(d.Etcd.TLS)
		if err != nil {
			return nil, err
		}
		scfg.Endpoints, scfg.TLS = d.Etcd.Endpoints, tlsConfig
		scfg.Username, scfg.Password = d.Etcd.Username, d.Etcd.Password
		s, err := etcdstore.New(scfg)
		if err != nil {
			return nil, err
		}
		return &openedStore{store: s, where: fmt.Sprintf("etcd %v", d.Etcd.Endpoints)}, nil
	}
	// embedded
	o := &openedStore{where: "embedded etcd in " + d.DataDir}
	e := d.Embedded
	if asGateway || !embedded.InUse(d.DataDir) {
		if !asGateway {
			if e.InitialCluster != "" {
				return nil, fmt.Errorf("%w: the embedded member in %s is peered and no maildirector runs there; start serve, or point the tool at an etcd endpoint", errNoStore, d.DataDir)
			}
			if _, err := os.Stat(d.DataDir); err != nil {
				return nil, fmt.Errorf("%w: %s does not exist (serve has never run with this configuration)", errNoStore, d.DataDir)
			}
		}
		m, err := embedded.Start(embedded.Config{
			DataDir: d.DataDir, Name: e.Name, PeerURLs: e.PeerURLs, ClientURLs: e.ClientURLs,
			InitialCluster: e.InitialCluster, InitialClusterState: e.InitialClusterState,
			CA: e.TLS.CA, Cert: e.TLS.Cert, Key: e.TLS.Key,
		})
		if errors.Is(err, embedded.ErrInUse) && !asGateway {
			// serve started meanwhile: use its socket.
		} else if err != nil {
			return nil, err
		} else {
			o.member = m
		}
	}
	cli, err := embedded.Dial(d.DataDir, nil)
	if err != nil {
		if o.member != nil {
			o.member.Close()
		}
		return nil, err
	}
	scfg.Client = cli
	s, err := etcdstore.New(scfg)
	if err != nil {
		cli.Close()
		if o.member != nil {
			o.member.Close()
		}
		return nil, err
	}
	o.store = closeBoth{s, cli}
	return o, nil
}

// closeBoth closes the store, then the client it was given.
type closeBoth struct {
	*etcdstore.Store
	cli interface{ Close() error }
}

func (c closeBoth) Close() error {
	err := c.Store.Close()
	c.cli.Close()
	return err
}

func etcdTLS(t config.EtcdTLS) (*tls.Config, error) {
	if t.CA == "" && t.Cert == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("director.etcd.tls.ca: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("director.etcd.tls.ca: no certificate in %s", t.CA)
		}
	}
	if t.Cert != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("director.etcd.tls.cert: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
