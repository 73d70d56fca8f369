// SPDX-License-Identifier: Apache-2.0

package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// BuildGateway builds the maildirector binary into dir and returns its
// path; flags go to `go build` (-race, for example). The tests run the
// real binary, configuration file and all.
func BuildGateway(dir string, flags ...string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "maildirector")
	args := append(append([]string{"build"}, flags...), "-o", bin, "./cmd/maildirector")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// Gateway is a running maildirector serve process.
type Gateway struct {
	Bin, Conf, LogPath string
	cmd                *exec.Cmd
	exited             chan struct{}
}

// StartGateway writes yaml to dir/maildirector.yaml, runs
// `maildirector serve -c` on it and waits until waitAddr accepts
// connections.
func StartGateway(bin, dir, yaml, waitAddr string) (*Gateway, error) {
	g := &Gateway{Bin: bin, Conf: filepath.Join(dir, "maildirector.yaml"), LogPath: filepath.Join(dir, "maildirector.log"), exited: make(chan struct{})}
	if err := os.WriteFile(g.Conf, []byte(yaml), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(g.LogPath)
	if err != nil {
		return nil, err
	}
	g.cmd = exec.Command(bin, "serve", "-c", g.Conf)
	g.cmd.Stdout, g.cmd.Stderr = logf, logf
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := g.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() {
		g.cmd.Wait()
		logf.Close()
		close(g.exited)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-g.exited:
			return nil, fmt.Errorf("maildirector exited at start:\n%s", g.Log())
		default:
		}
		if WaitListening(waitAddr, 100*time.Millisecond) == nil {
			return g, nil
		}
		if time.Now().After(deadline) {
			g.Stop()
			return nil, fmt.Errorf("maildirector not listening on %s:\n%s", waitAddr, g.Log())
		}
	}
}

// Pid returns the process id (for memory measurements).
func (g *Gateway) Pid() int { return g.cmd.Process.Pid }

// Log returns the gateway's log so far.
func (g *Gateway) Log() string {
	b, _ := os.ReadFile(g.LogPath)
	return string(b)
}

// Stop sends SIGTERM and waits for a clean exit.
func (g *Gateway) Stop() {
	select {
	case <-g.exited:
		return
	default:
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(10 * time.Second):
		g.cmd.Process.Kill()
		<-g.exited
	}
}
