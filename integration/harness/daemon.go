// SPDX-License-Identifier: Apache-2.0

package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// daemon is a server running in the foreground as our child (slapd here,
// mariadbd in mariadb.go). It has its own process group, so that signals
// reach whatever it forks, and Pdeathsig, so that it dies with the test.
type daemon struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// startDaemon starts argv with its output appended to logPath: a restarted
// server keeps the log of its earlier life.
func startDaemon(logPath string, argv ...string) (*daemon, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "--- harness: starting %s at %s\n", strings.Join(argv, " "), time.Now().Format(time.RFC3339Nano))
	d := &daemon{cmd: exec.Command(argv[0], argv[1:]...), exited: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() {
		d.cmd.Wait()
		logf.Close()
		close(d.exited)
	}()
	return d, nil
}

// alive reports whether the process is still running (frozen counts).
func (d *daemon) alive() bool {
	if d == nil {
		return false
	}
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// waitReady calls ready until it succeeds, the daemon exits or timeout
// passes.
func (d *daemon) waitReady(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		if !d.alive() {
			return fmt.Errorf("exited: %v", d.cmd.ProcessState)
		}
		err := ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *daemon) signal(sig syscall.Signal) {
	if d.alive() {
		syscall.Kill(-d.cmd.Process.Pid, sig)
	}
}

// stop thaws and terminates the daemon, killing it after grace.
func (d *daemon) stop(grace time.Duration) {
	if !d.alive() {
		return
	}
	d.signal(syscall.SIGCONT)
	d.signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(grace):
		d.kill()
	}
}

func (d *daemon) kill() {
	if !d.alive() {
		return
	}
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.exited
}
