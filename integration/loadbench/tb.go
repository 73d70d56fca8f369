// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"testing"
)

// standalone is a testing.TB outside go test, for the harness's starters
// that take one (harness.StartEtcd): a Fatal or a Skip ends the call made
// through call with an error; Cleanup functions run at close. The
// embedded TB is nil: a method the starters do not use panics, which is
// what a change in them that needs more should do.
type standalone struct {
	testing.TB
	name     string
	cleanups []func()
	failed   bool
}

// tbAbort carries a Fatal or Skip out of the starter to call.
type tbAbort struct{ msg string }

func (s *standalone) Helper()                         {}
func (s *standalone) Name() string                    { return s.name }
func (s *standalone) Cleanup(f func())                { s.cleanups = append(s.cleanups, f) }
func (s *standalone) Failed() bool                    { return s.failed }
func (s *standalone) Log(args ...any)                 { logf("%s", fmt.Sprint(args...)) }
func (s *standalone) Logf(format string, args ...any) { logf(format, args...) }
func (s *standalone) Errorf(format string, args ...any) {
	s.failed = true
	logf(format, args...)
}
func (s *standalone) Fatal(args ...any) { s.failed = true; panic(tbAbort{fmt.Sprint(args...)}) }
func (s *standalone) Fatalf(format string, args ...any) {
	s.failed = true
	panic(tbAbort{fmt.Sprintf(format, args...)})
}
func (s *standalone) Skipf(format string, args ...any) {
	panic(tbAbort{"skipped: " + fmt.Sprintf(format, args...)})
}

// call runs f, returning a Fatal's or a Skip's message as an error.
func (s *standalone) call(f func(*standalone)) (err error) {
	defer func() {
		if r := recover(); r != nil {
			a, ok := r.(tbAbort)
			if !ok {
				panic(r)
			}
			err = errors.New(a.msg)
		}
	}()
	f(s)
	return nil
}

// close runs the Cleanup functions, last registered first.
func (s *standalone) close() {
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
	s.cleanups = nil
}
