// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maildirector/maildirector/integration/harness"
)

// TestSystemdUnitVerifies runs systemd-analyze verify on the shipped unit
// (with ExecStart pointing at the binary built here) and logs its
// exposure score.
func TestSystemdUnitVerifies(t *testing.T) {
	requireTools(t, "systemd-analyze")
	bin := gatewayBinary(t)
	unit, err := os.ReadFile(filepath.Join("..", "contrib/systemd/maildirector.service")) // go test runs in integration/
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "maildirector.service")
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/maildirector", bin)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", path).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, want := range []string{"Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "LimitNOFILE=", "WatchdogSec="} {
		if !strings.Contains(text, want) {
			t.Errorf("unit lacks %s", want)
		}
	}
	if sec, err := exec.Command("systemd-analyze", "security", "--offline=yes", path).CombinedOutput(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(sec)), "\n")
		t.Logf("systemd-analyze security: %s", lines[len(lines)-1])
	}
}

// TestSystemdNotify runs serve as systemd would with Type=notify and
// WatchdogSec, on a notify socket of its own: READY=1 once it listens
// (the IMAP port answers by then), RELOADING=1 and READY=1 around a
// SIGHUP, WATCHDOG=1 pings, STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	bin := gatewayBinary(t)
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	port, err := harness.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	imapAddr := "127.0.0.1:" + strconv.Itoa(port)
	conf := filepath.Join(dir, "maildirector.yaml")
	os.WriteFile(conf, []byte(`listen:
  - {protocol: imap, address: "`+imapAddr+`"}
allow_plaintext: true
passdb:
  - {driver: static, args: "proxy=y nopassword=y"}
director:
  backends: ["127.0.0.1"]
  store: memory
`), 0o644)
	cmd := exec.Command(bin, "serve", "-c", conf)
	// No WATCHDOG_PID: the pid is not known before the start, and
	// without it the watchdog applies to whoever reads WATCHDOG_USEC.
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=400000")
	logf, _ := os.Create(filepath.Join(dir, "serve.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	msgs := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	wait := func(want string) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					t.Fatalf("notify socket closed before %s", want)
				}
				if strings.HasPrefix(m, want) {
					return
				}
			case <-deadline:
				log, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
				t.Fatalf("no %s from serve within 20 s; log:\n%s", want, log)
			}
		}
	}
	wait("READY=1")
	if c, err := net.DialTimeout("tcp", imapAddr, time.Second); err != nil {
		t.Fatalf("READY=1 came before the IMAP listener took connections: %v", err)
	} else {
		c.Close()
	}
	wait("WATCHDOG=1")
	cmd.Process.Signal(syscall.SIGHUP)
	wait("RELOADING=1")
	wait("READY=1")
	cmd.Process.Signal(syscall.SIGTERM)
	wait("STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Errorf("serve after SIGTERM: %v", err)
	}
}
