// SPDX-License-Identifier: Apache-2.0

package passdb

import (
	"context"
	"errors"
	"testing"

	"github.com/maildirector/maildirector/auth"
)

type fixed struct {
	st  auth.Status
	err error
}

func (f fixed) Verify(context.Context, *auth.Request) (auth.Result, error) {
	if f.err != nil {
		return auth.Result{}, f.err
	}
	return auth.Result{Status: f.st}, nil
}

func TestChain(t *testing.T) {
	temp := auth.Temporary("db", errors.New("down"))
	internal := auth.Internal("db", errors.New("bad config"))
	ok, unknown, mismatch, disabled := fixed{st: auth.StatusOK}, fixed{st: auth.StatusUserUnknown},
		fixed{st: auth.StatusPasswordMismatch}, fixed{st: auth.StatusUserDisabled}
	tests := []struct {
		name     string
		dbs      []DB
		want     auth.Status
		wantKind auth.Kind
		wantErr  bool
	}{
		{"first OK", []DB{ok, unknown}, auth.StatusOK, 0, false},
		{"unknown then OK", []DB{unknown, ok}, auth.StatusOK, 0, false},
		{"mismatch everywhere", []DB{mismatch, unknown}, auth.StatusPasswordMismatch, 0, false},
		{"unknown everywhere", []DB{unknown, unknown}, auth.StatusUserUnknown, 0, false},
		{"temp then unknown is temporary", []DB{fixed{err: temp}, unknown}, 0, auth.KindTemporary, true},
		{"temp then OK is OK", []DB{fixed{err: temp}, ok}, auth.StatusOK, 0, false},
		{"internal then mismatch is internal", []DB{fixed{err: internal}, mismatch}, 0, auth.KindInternal, true},
		{"disabled stops", []DB{disabled, ok}, auth.StatusUserDisabled, 0, false},
		{"unclassified error is temporary", []DB{fixed{err: errors.New("eh")}}, 0, auth.KindTemporary, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Chain{}
			for _, db := range tt.dbs {
				c.Entries = append(c.Entries, Entry{DB: db})
			}
			res, err := c.Verify(context.Background(), &auth.Request{User: "u"})
			if tt.wantErr {
				if err == nil || auth.KindOf(err) != tt.wantKind {
					t.Fatalf("got %v, %v; want a %v error", res.Status, err, tt.wantKind)
				}
				return
			}
			if err != nil || res.Status != tt.want {
				t.Fatalf("got %v, %v; want %v", res.Status, err, tt.want)
			}
		})
	}
}

func TestEmptyChainIsInternal(t *testing.T) {
	_, err := (&Chain{}).Verify(context.Background(), &auth.Request{})
	if err == nil || auth.KindOf(err) != auth.KindInternal {
		t.Fatalf("got %v", err)
	}
}
