// SPDX-License-Identifier: Apache-2.0

package admin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// MinTokenLength is the shortest token a token file may hold.
const MinTokenLength = 16

// Tokens are the bearer tokens the admin listener accepts.
type Tokens struct {
	mu   sync.RWMutex // Replace may run while requests are checked
	list []token
}

// Replace makes n's tokens the ones accepted from now on (a reload that
// re-read the token file).
func (t *Tokens) Replace(n *Tokens) {
	n.mu.RLock()
	list := n.list
	n.mu.RUnlock()
	t.mu.Lock()
	t.list = list
	t.mu.Unlock()
}

type token struct {
	name string
	sum  [sha256.Size]byte
}

// LoadTokens reads a token file: one token per line, optionally preceded
// by a name and a space ("alice 9f8e…"; the name appears in the logs and
// the store's records of who changed what). Blank lines and lines
// starting with # are skipped. A token has at least MinTokenLength
// characters and no spaces.
func LoadTokens(path string) (*Tokens, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := ParseTokens(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ParseTokens reads a token file's contents (see LoadTokens).
func ParseTokens(data []byte) (*Tokens, error) {
	t := &Tokens{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		var name, tok string
		switch len(fields) {
		case 1:
			tok = fields[0]
		case 2:
			name, tok = fields[0], fields[1]
		default:
			return nil, fmt.Errorf("line %d: want TOKEN or NAME TOKEN", n)
		}
		if len(tok) < MinTokenLength {
			return nil, fmt.Errorf("line %d: a token needs at least %d characters", n, MinTokenLength)
		}
		sum := sha256.Sum256([]byte(tok))
		if name == "" {
			// Never a piece of the secret: a piece of its digest.
			name = "token-" + hex.EncodeToString(sum[:4])
		}
		t.list = append(t.list, token{name: name, sum: sum})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(t.list) == 0 {
		return nil, errors.New("no token")
	}
	return t, nil
}

// check returns the name of the token presented, comparing it with every
// token in constant time (digests of equal length: neither a token's
// content nor its length shows in the time taken).
func (t *Tokens) check(presented string) (string, bool) {
	sum := sha256.Sum256([]byte(presented))
	t.mu.RLock()
	defer t.mu.RUnlock()
	found := -1
	for i, tok := range t.list {
		if subtle.ConstantTimeCompare(sum[:], tok.sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return t.list[found].name, true
}

type callerKey struct{}

// Caller returns the name of the token a request under Require presented.
func Caller(ctx context.Context) string {
	s, _ := ctx.Value(callerKey{}).(string)
	return s
}

// Require wraps next so that every request must carry one of t's tokens:
// "Authorization: Bearer TOKEN" (the API's clients, Prometheus), or HTTP
// Basic with the token as the password and any user name, which is what a
// browser opening the status page can send (it asks for it once and sends
// it with the page's own requests). Any other request is answered 401 with
// nothing else (not even whether the path exists). Every handler of the
// admin listener (the API, metrics, the status page) goes behind it.
func (t *Tokens) Require(next http.Handler, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, presented, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		name, ok := "", false
		switch {
		case strings.EqualFold(scheme, "Bearer"):
			name, ok = t.check(strings.TrimSpace(presented))
		case strings.EqualFold(scheme, "Basic"):
			if _, pass, basic := r.BasicAuth(); basic {
				name, ok = t.check(pass)
			}
		}
		if !ok {
			log.Warn("admin: request without a valid token", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="maildirector"`)
			w.Header().Add("WWW-Authenticate", `Basic realm="maildirector", charset="UTF-8"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"unauthorized"}` + "\n"))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, name)))
	})
}

// HTTPServer is the admin listener: Handler (Tokens.Require around the
// routes) on Address, over TLS when TLS is set.
type HTTPServer struct {
	Address string
	TLS     *tls.Config
	Handler http.Handler
	Log     *slog.Logger

	ln  net.Listener
	srv *http.Server
}

// Listen binds the address.
func (h *HTTPServer) Listen() error {
	ln, err := net.Listen("tcp", h.Address)
	if err != nil {
		return fmt.Errorf("admin listen: %w", err)
	}
	if h.TLS != nil {
		ln = tls.NewListener(ln, h.TLS)
	}
	h.ln = ln
	log := h.log()
	log.Info("listening", "service", "admin-api", "address", ln.Addr().String(), "tls", h.TLS != nil)
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil && !ap.Addr().IsLoopback() && h.TLS == nil {
		log.Warn("admin: the API listens beyond loopback without TLS; its tokens cross the network in the clear (set admin.tls)")
	}
	return nil
}

func (h *HTTPServer) log() *slog.Logger {
	if h.Log == nil {
		return slog.Default()
	}
	return h.Log
}

// Addr returns the bound address (after Listen).
func (h *HTTPServer) Addr() net.Addr { return h.ln.Addr() }

// Serve serves until ctx is done, then gives requests in progress 5
// seconds to end.
func (h *HTTPServer) Serve(ctx context.Context) {
	h.srv = &http.Server{
		Handler:           h.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(h.log().Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		h.srv.Shutdown(sctx)
	})
	defer stop()
	if err := h.srv.Serve(h.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		h.log().Error("admin: serve", "reason", err)
	}
	<-ctx.Done()
}
