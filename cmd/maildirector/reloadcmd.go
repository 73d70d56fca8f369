// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/maildirector/maildirector/admin"
	"github.com/maildirector/maildirector/config"
)

// cmdReload asks a running gateway to reload: maildirector reload -c FILE.
// FILE is read first: a file with problems is refused here, with the same
// report the gateway would give, and the gateway is not asked.
func cmdReload(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "/etc/maildirector/maildirector.yaml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	cfg, err := config.Load(*path)
	if err != nil {
		// Scripts read the problem lines whichever side refused.
		return printReloadReport(refusal(err), stdout, stderr)
	}
	var rep admin.ReloadReport
	switch {
	case cfg.Admin.Socket != "":
		rep, err = reloadBySocket(cfg.Admin.Socket)
	case cfg.Admin.Listen != "":
		rep, err = reloadByHTTP(cfg)
	default:
		err = errors.New("neither admin.socket nor admin.listen is configured: send SIGHUP instead (systemctl reload maildirector)")
	}
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: reload: %v\n", err)
		return 75
	}
	return printReloadReport(rep, stdout, stderr)
}

// printReloadReport prints rep and returns the exit status: 0 applied, 1
// refused.
func printReloadReport(rep admin.ReloadReport, stdout, stderr io.Writer) int {
	for _, p := range rep.Problems {
		fmt.Fprintf(stderr, "problem: %s\n", p)
	}
	if !rep.OK {
		fmt.Fprintln(stderr, "reload refused: the running gateway keeps its configuration")
		return 1
	}
	fmt.Fprintln(stdout, "configuration reloaded")
	for _, n := range rep.Notes {
		fmt.Fprintf(stdout, "  %s\n", n)
	}
	if len(rep.Restart) > 0 {
		fmt.Fprintf(stdout, "changed but applied only at the next restart: %s\n", strings.Join(rep.Restart, ", "))
	}
	return 0
}

// reloadBySocket sends RELOAD on the admin socket (after the
// director-admin handshake).
func reloadBySocket(path string) (admin.ReloadReport, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return admin.ReloadReport{}, err
	}
	defer c.Close()
	// A reload reads files and may bind listeners; a minute is plenty.
	c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(c, "VERSION\tdirector-doveadm\t1\t0\nRELOAD\n"); err != nil {
		return admin.ReloadReport{}, err
	}
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil { // the server's VERSION
		return admin.ReloadReport{}, err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return admin.ReloadReport{}, fmt.Errorf("no answer from %s: %w", path, err)
	}
	return admin.ParseReloadLine(line), nil
}

// reloadByHTTP posts to the admin listener with the token file's first
// token.
func reloadByHTTP(cfg *config.Config) (admin.ReloadReport, error) {
	tok, err := firstToken(cfg.Admin.TokenFile)
	if err != nil {
		return admin.ReloadReport{}, err
	}
	scheme := "http"
	client := &http.Client{Timeout: time.Minute}
	if cfg.Admin.TLS.Cert != "" {
		scheme = "https"
		// The tool talks to its own gateway's listener, whose
		// certificate is the one in the file it just read.
		client.Transport = &http.Transport{TLSClientConfig: adminClientTLS(cfg)}
	}
	req, err := http.NewRequest("POST", scheme+"://"+cfg.Admin.Listen+"/api/v1/reload", nil)
	if err != nil {
		return admin.ReloadReport{}, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return admin.ReloadReport{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var rep admin.ReloadReport
	if err := json.Unmarshal(body, &rep); err != nil {
		return admin.ReloadReport{}, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return rep, nil
}

// firstToken returns the first token of a token file (lines "TOKEN" or
// "NAME TOKEN", # comments).
func firstToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin.token_file: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		return f[len(f)-1], nil
	}
	return "", fmt.Errorf("admin.token_file: no token in %s", path)
}

// adminClientTLS trusts exactly the admin listener's own certificate (the
// file cfg names): the tool may reach it by an address the certificate
// does not name, and pinning the very certificate is stricter than any
// name check.
func adminClientTLS(cfg *config.Config) *tls.Config {
	want, err := tls.LoadX509KeyPair(cfg.Admin.TLS.Cert, cfg.Admin.TLS.Key)
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if err != nil || len(raw) == 0 || len(want.Certificate) == 0 || !bytes.Equal(raw[0], want.Certificate[0]) {
				return errors.New("the admin listener's certificate is not the one admin.tls names")
			}
			return nil
		},
	}
}
