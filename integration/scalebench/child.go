// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The program runs its gateways and embedded etcd members as child
// processes of itself (-role gateway|member), so that each has its own
// heap and CPU time to measure, as a real gateway has. The parent drives
// them with one JSON request per line on their standard input; each
// answers with one JSON line on standard output. A child whose standard
// input closes (the parent went away) exits.

// request is one order to a child.
type request struct {
	Op   string `json:"op"`
	From int    `json:"from,omitempty"`
	N    int    `json:"n,omitempty"`
	Conc int    `json:"conc,omitempty"`
	// Hold keeps the leases acquired (the users stay active) until a
	// "release".
	Hold bool `json:"hold,omitempty"`
}

// reply is a child's answer; which fields are set depends on the order.
type reply struct {
	Err string `json:"err,omitempty"`
	// ready: how long the gateway's store took to start (join the
	// cluster, load the state) and whether it is fenced.
	StartMS float64 `json:"start_ms,omitempty"`
	Fenced  bool    `json:"fenced,omitempty"`
	// acquire
	Done       int     `json:"done,omitempty"`
	Errors     int     `json:"errors,omitempty"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds,omitempty"`
	P50MS      float64 `json:"p50_ms,omitempty"`
	P99MS      float64 `json:"p99_ms,omitempty"`
	// mem (after two garbage collections)
	HeapAlloc  uint64 `json:"heap_alloc,omitempty"`
	HeapInuse  uint64 `json:"heap_inuse,omitempty"`
	Goroutines int    `json:"goroutines,omitempty"`
	PSSKiB     int64  `json:"pss_kib,omitempty"`
	RSSKiB     int64  `json:"rss_kib,omitempty"`
	// cpu: the process's own user+system time
	CPUNS int64 `json:"cpu_ns,omitempty"`
}

// child is a running child process.
type child struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	in      io.WriteCloser
	out     *bufio.Scanner
	mu      sync.Mutex
	done    chan struct{}
}

// startChild runs this program with args, its standard error into
// logPath, and waits for its first answer (ready) for up to timeout.
func startChild(name, logPath string, timeout time.Duration, args ...string) (*child, reply, error) {
	c, err := spawnChild(name, logPath, args...)
	if err != nil {
		return nil, reply{}, err
	}
	r, err := c.waitReady(timeout)
	if err != nil {
		return nil, reply{}, err
	}
	return c, r, nil
}

// spawnChild runs this program with args, its standard error into
// logPath; waitReady waits for its first answer.
func spawnChild(name, logPath string, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	c := &child{name: name, logPath: logPath, cmd: exec.Command(exe, args...), done: make(chan struct{})}
	c.cmd.Stderr = logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if c.in, err = c.cmd.StdinPipe(); err != nil {
		logf.Close()
		return nil, err
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	c.out = bufio.NewScanner(out)
	c.out.Buffer(make([]byte, 64*1024), 16<<20)
	if err := c.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() {
		c.cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	return c, nil
}

// waitReady waits for the child's first answer; a child that does not
// give it in time is stopped.
func (c *child) waitReady(timeout time.Duration) (reply, error) {
	type result struct {
		r   reply
		err error
	}
	ch := make(chan result, 1)
	go func() {
		r, err := c.read()
		ch <- result{r, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			c.stop()
			b, _ := os.ReadFile(c.logPath)
			return reply{}, fmt.Errorf("%s: %v\n%s", c.name, res.err, tailLines(string(b), 20))
		}
		return res.r, nil
	case <-time.After(timeout):
		c.stop()
		return reply{}, fmt.Errorf("%s: not ready after %v", c.name, timeout)
	}
}

// Pid returns the child's process id.
func (c *child) Pid() int { return c.cmd.Process.Pid }

func (c *child) read() (reply, error) {
	if !c.out.Scan() {
		if err := c.out.Err(); err != nil {
			return reply{}, err
		}
		return reply{}, errors.New("exited")
	}
	var r reply
	if err := json.Unmarshal(c.out.Bytes(), &r); err != nil {
		return reply{}, err
	}
	if r.Err != "" {
		return r, errors.New(r.Err)
	}
	return r, nil
}

// call sends req and waits for the answer.
func (c *child) call(req request) (reply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, _ := json.Marshal(req)
	if _, err := c.in.Write(append(b, '\n')); err != nil {
		return reply{}, fmt.Errorf("%s: %w", c.name, err)
	}
	r, err := c.read()
	if err != nil {
		return r, fmt.Errorf("%s %s: %w", c.name, req.Op, err)
	}
	return r, nil
}

// stop closes the child's standard input, which ends it, and kills it
// after ten seconds.
func (c *child) stop() {
	c.in.Close()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// serveChild answers the parent's requests with handle until standard
// input closes. ready is the first answer. mem and cpu are answered here
// for every role.
func serveChild(ready reply, handle func(request) reply) {
	enc := json.NewEncoder(os.Stdout)
	enc.Encode(ready)
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		var req request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			enc.Encode(reply{Err: err.Error()})
			continue
		}
		switch req.Op {
		case "mem":
			enc.Encode(memReply())
		case "cpu":
			enc.Encode(reply{CPUNS: int64(selfCPU())})
		default:
			enc.Encode(handle(req))
		}
	}
}

// memReply measures this process after collecting garbage twice (the
// second collects what the first one's finalizers released).
func memReply() reply {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m, _ := readMem(os.Getpid())
	return reply{HeapAlloc: ms.HeapAlloc, HeapInuse: ms.HeapInuse, Goroutines: runtime.NumGoroutine(), PSSKiB: m.PSS, RSSKiB: m.RSS}
}

// fatalChild answers the parent's first read with err and exits.
func fatalChild(err error) {
	json.NewEncoder(os.Stdout).Encode(reply{Err: err.Error()})
	os.Exit(1)
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
