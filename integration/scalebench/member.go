// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/maildirector/maildirector/director/store/embedded"
)

// runMember is -role member: the etcd member serve embeds
// (director.store: embedded), alone or peered, in a process of its own so
// that its memory and CPU are measured apart from the gateway's.
func runMember(args []string) {
	fs := flag.NewFlagSet("member", flag.ExitOnError)
	dir := fs.String("data", "", "data directory")
	name := fs.String("name", "", "member name")
	peer := fs.String("peer", "", "peer URL (peered members)")
	initial := fs.String("cluster", "", "initial cluster (peered members)")
	fs.Parse(args)
	cfg := embedded.Config{DataDir: *dir, Name: *name, InitialCluster: *initial}
	if *peer != "" {
		cfg.PeerURLs = []string{*peer}
	}
	m, err := embedded.Start(cfg)
	if err != nil {
		fatalChild(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err = m.Wait(ctx)
	cancel()
	if err != nil {
		fatalChild(fmt.Errorf("member %s: no quorum: %w", *name, err))
	}
	serveChild(reply{}, func(req request) reply { return reply{Err: "unknown order " + req.Op} })
	m.Close()
}
