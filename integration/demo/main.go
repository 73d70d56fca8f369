// SPDX-License-Identifier: Apache-2.0

// Command demo starts two private Dovecot backends and maildirector in
// front of them, all on loopback, and prints how to connect. Ctrl-C stops
// everything and removes the temporary directory.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/integration/harness"
)

// demoUsers land on both backends of the demo's two-host ring.
var demoUsers = []string{"alice", "bob", "carol", "grace", "heidi", "judy"}

func main() {
	listen := flag.String("listen", "127.0.0.1:10143", "gateway IMAP address")
	keep := flag.Bool("keep", false, "keep the temporary directory")
	flag.Parse()
	if err := run(*listen, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(listen string, keep bool) error {
	dir, err := os.MkdirTemp("/tmp", "mddemo-")
	if err != nil {
		return err
	}
	os.Chmod(dir, 0o755)
	if !keep {
		defer os.RemoveAll(dir)
	}
	users := map[string]string{}
	for _, u := range demoUsers {
		users[u+"@example.com"] = "secret"
	}
	ips := []string{"127.0.0.11", "127.0.0.12"}
	var port, pop3, lmtp, sieve int
	for _, p := range []*int{&port, &pop3, &lmtp, &sieve} {
		if *p, err = harness.FreePort(ips...); err != nil {
			return err
		}
	}
	var backends []*harness.Dovecot
	defer func() {
		for _, b := range backends {
			b.Stop()
		}
	}()
	for _, ip := range ips {
		b, err := harness.StartDovecot(harness.DovecotOptions{
			IP: ip, IMAPPort: port, POP3Port: pop3, LMTPPort: lmtp, SievePort: sieve,
			Dir:      filepath.Join(dir, "backend-"+ip),
			MailRoot: filepath.Join(dir, "mail"),
			Users:    users,
		})
		if err != nil {
			return err
		}
		backends = append(backends, b)
	}
	fmt.Println("building maildirector ...")
	bin, err := harness.BuildGateway(dir)
	if err != nil {
		return err
	}
	yaml := fmt.Sprintf(`# maildirector demo configuration
listen:
  - protocol: imap
    address: %s
  - protocol: pop3
    address: 127.0.0.1:10110
  - protocol: sieve
    address: 127.0.0.1:14190
  - protocol: lmtp
    address: 127.0.0.1:10024
passdb:
  - driver: static
    args: proxy=y nopassword=y
director:
  backends: [%s]
  user_expire: 15m
  data_dir: %s
backend:
  ports: {imap: %d, pop3: %d, lmtp: %d, sieve: %d}
trusted_networks: [127.0.0.0/8]
`, listen, strings.Join(ips, ", "), filepath.Join(dir, "data"), port, pop3, lmtp, sieve)
	gw, err := harness.StartGateway(bin, dir, yaml, listen)
	if err != nil {
		return err
	}
	defer gw.Stop()

	hosts, _ := director.ParseHosts(ips)
	ring := director.NewRing(hosts)
	fmt.Printf("\nmaildirector demo is running.\n\n")
	fmt.Printf("  gateway:         IMAP %s, POP3 127.0.0.1:10110, ManageSieve 127.0.0.1:14190, LMTP 127.0.0.1:10024\n", listen)
	for _, b := range backends {
		fmt.Printf("  backend Dovecot: %s   log: %s\n", b.IMAPAddr(), b.LogPath)
	}
	fmt.Printf("  gateway config:  %s\n  gateway log:     %s\n\n", gw.Conf, gw.LogPath)
	fmt.Println("users (password \"secret\") and the backend the ring gives them:")
	for _, u := range demoUsers {
		ip, _ := ring.Lookup(director.UserHash(u + "@example.com"))
		fmt.Printf("  %-20s -> %s\n", u+"@example.com", ip)
	}
	host, p, _ := strings.Cut(listen, ":")
	fmt.Printf(`
try:
  curl -v --url "imap://%s:%s/INBOX" --user "alice@example.com:secret"
  python3 -c 'import imaplib; m = imaplib.IMAP4("%s", %s); print(m.login("grace@example.com", "secret")); print(m.select("INBOX")); m.logout()'
  swaks --protocol LMTP --server 127.0.0.1 --port 10024 --to alice@example.com,grace@example.com
  curl -v --url "pop3://127.0.0.1:10110/" --user "alice@example.com:secret"
  sieve-connect --nosrv --server 127.0.0.1 --port 14190 --user alice@example.com --clearchan --list
  doveadm -c %s who      # who is on the first backend

Ctrl-C stops the demo.
`, host, p, host, p, backends[0].Conf)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	fmt.Println("\nstopping ...")
	return nil
}
