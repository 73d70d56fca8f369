// SPDX-License-Identifier: Apache-2.0

// Package oauth validates OAuth 2.0 bearer tokens for OAUTHBEARER and
// XOAUTH2 logins with token introspection (RFC 7662), as Dovecot's oauth2
// passdb does with introspection_mode = post.
//
// It may import auth and mechs.
package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/mechs"
)

// Introspector asks an introspection endpoint whether a token is active
// and whose it is. It implements mechs.TokenValidator.
type Introspector struct {
	URL          string // the introspection endpoint
	ClientID     string // HTTP basic credentials, when the endpoint wants them
	ClientSecret string
	// UsernameAttribute names the response member holding the user
	// (Dovecot's username_attribute; default "email", else "username"
	// then "sub" are tried).
	UsernameAttribute string
	Timeout           time.Duration
	Client            *http.Client // nil: a client with Timeout
}

var _ mechs.TokenValidator = (*Introspector)(nil)

// Validate implements mechs.TokenValidator.
func (in *Introspector) Validate(ctx context.Context, token string) (string, error) {
	timeout := in.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.URL, strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return "", auth.Internal("oauth introspection", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if in.ClientID != "" {
		req.SetBasicAuth(in.ClientID, in.ClientSecret)
	}
	client := in.Client
	if client == nil {
		client = &http.Client{Timeout: timeout}
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", auth.Temporary("oauth introspection", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", auth.Temporary("oauth introspection", err)
	}
	switch {
	case resp.StatusCode >= 500:
		return "", auth.Temporary("oauth introspection", fmt.Errorf("HTTP %d", resp.StatusCode))
	case resp.StatusCode != http.StatusOK:
		// 401/403: our client credentials are wrong, not the user's token.
		return "", auth.Internal("oauth introspection", fmt.Errorf("HTTP %d", resp.StatusCode))
	}
	var r map[string]any
	if err := json.Unmarshal(body, &r); err != nil {
		return "", auth.Temporary("oauth introspection", fmt.Errorf("bad JSON: %w", err))
	}
	if active, _ := r["active"].(bool); !active {
		return "", mechs.ErrInvalidToken
	}
	attrs := []string{"email", "username", "sub"}
	if in.UsernameAttribute != "" {
		attrs = []string{in.UsernameAttribute}
	}
	for _, a := range attrs {
		if u, ok := r[a].(string); ok && u != "" {
			return u, nil
		}
	}
	return "", auth.Internal("oauth introspection", errors.New("active token without a user name attribute"))
}
