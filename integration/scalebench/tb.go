// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// runTB is the testing.TB the harness's starters (StartEtcd, ...) take,
// for a program that is not a test: Fatal and Skip abort the run (main
// recovers them), Cleanup runs when the run ends, last first. Embedding
// the interface satisfies its unexported method; every method the
// harness calls is defined here, so the nil interface is never reached.
type runTB struct {
	testing.TB
	dir string

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	temps    int
}

// abort is what Fatal and Skip panic with.
type abort struct {
	msg  string
	skip bool
}

func newRunTB(dir string) *runTB { return &runTB{dir: dir} }

func (t *runTB) Helper()      {}
func (t *runTB) Name() string { return "scalebench" }
func (t *runTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}
func (t *runTB) Log(args ...any)                 { log.Print(args...) }
func (t *runTB) Logf(format string, args ...any) { log.Printf(format, args...) }
func (t *runTB) Error(args ...any) {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
	log.Print(args...)
}
func (t *runTB) Errorf(format string, args ...any) { t.Error(fmt.Sprintf(format, args...)) }
func (t *runTB) Fatal(args ...any) {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
	panic(abort{msg: fmt.Sprint(args...)})
}
func (t *runTB) Fatalf(format string, args ...any) { t.Fatal(fmt.Sprintf(format, args...)) }
func (t *runTB) FailNow()                          { t.Fatal("FailNow") }
func (t *runTB) Skip(args ...any)                  { panic(abort{msg: fmt.Sprint(args...), skip: true}) }
func (t *runTB) Skipf(format string, args ...any)  { t.Skip(fmt.Sprintf(format, args...)) }
func (t *runTB) SkipNow()                          { t.Skip("SkipNow") }

// TempDir returns a new directory under the run's directory (removed with
// it).
func (t *runTB) TempDir() string {
	t.mu.Lock()
	t.temps++
	n := t.temps
	t.mu.Unlock()
	d := filepath.Join(t.dir, fmt.Sprintf("tmp%d", n))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func (t *runTB) Cleanup(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}

// cleanup runs the registered cleanups, last first.
func (t *runTB) cleanup() {
	for {
		t.mu.Lock()
		n := len(t.cleanups)
		if n == 0 {
			t.mu.Unlock()
			return
		}
		f := t.cleanups[n-1]
		t.cleanups = t.cleanups[:n-1]
		t.mu.Unlock()
		f()
	}
}
