// SPDX-License-Identifier: Apache-2.0

package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// API is the HTTP JSON API under /api/v1/: one route per operation. Put
// it behind Tokens.Require.
//
//	GET    /api/v1/status                 gateways and backends
//	GET    /api/v1/hosts                  backends: state, vhosts, users
//	POST   /api/v1/hosts                  add {"ip", "tag", "vhosts"}
//	GET    /api/v1/hosts/{ip}             one backend
//	PUT    /api/v1/hosts/{ip}             update {"vhosts"}
//	DELETE /api/v1/hosts/{ip}             remove (its users move first)
//	POST   /api/v1/hosts/{ip}/up          take new users again
//	POST   /api/v1/hosts/{ip}/down        down (its users move first)
//	POST   /api/v1/hosts/{ip}/flush       users back to the ring ("all": every backend)
//	POST   /api/v1/hosts/{ip}/drain       no new users (weight remembered); waits until
//	       [?kick_after=D&timeout=D]      nobody is left (kick_after: move the rest)
//	POST   /api/v1/hosts/{ip}/undrain     the remembered weight back
//	GET    /api/v1/users/{user}[?tag=T]   where the user is, where the ring says
//	POST   /api/v1/users/{user}/move      {"host": ip}
//	POST   /api/v1/users/{user}/kick      end its sessions on every gateway
//	GET    /api/v1/map[?host=IP]          live assignments
//	POST   /api/v1/reload                 re-read the configuration file and apply it:
//	       200 {"ok": true, "restart": [...], "notes": [...]}, or 422 {"ok": false, "problems": [...]}
//
// Answers are JSON; a failure is {"error": "..."} with 400 (bad input),
// 404 (no such backend), 409 (refused: tag change, last backend, move to a
// down backend), 501 (not available yet), 503 (the store cannot answer) or
// 504 (a move did not finish in time; it goes on).
type API struct {
	Ops Ops
	Log *slog.Logger
	// OpTimeout bounds one operation (0: 2 minutes).
	OpTimeout time.Duration
	// Reload, when set, serves POST /api/v1/reload.
	Reload Reloader

	now func() time.Time // tests
}

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	svc := &service{ops: a.Ops, now: a.now}
	h := func(pattern string, fn func(ctx context.Context, svc *service, r *http.Request, by string) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			a.serve(w, r, svc, fn)
		})
	}
	if a.Reload != nil {
		mux.HandleFunc("POST /api/v1/reload", func(w http.ResponseWriter, r *http.Request) {
			rep := a.Reload(r.Context(), "api:"+Caller(r.Context())+"@"+r.RemoteAddr)
			w.Header().Set("Content-Type", "application/json")
			if !rep.OK {
				w.WriteHeader(http.StatusUnprocessableEntity)
			}
			json.NewEncoder(w).Encode(rep)
		})
	}
	h("GET /api/v1/status", func(ctx context.Context, svc *service, r *http.Request, _ string) (any, error) {
		hosts, err := svc.hosts(ctx)
		if err != nil {
			return nil, err
		}
		gws, err := svc.ops.Gateways(ctx)
		if err != nil {
			return nil, err
		}
		addSessions(hosts, gws)
		return map[string]any{"gateways": gws, "hosts": hosts}, nil
	})
	h("GET /api/v1/hosts", func(ctx context.Context, svc *service, r *http.Request, _ string) (any, error) {
		return svc.hosts(ctx)
	})
	h("POST /api/v1/hosts", func(ctx context.Context, svc *service, r *http.Request, by string) (any, error) {
		var body struct {
			IP     string `json:"ip"`
			Tag    string `json:"tag"`
			VHosts *int   `json:"vhosts"`
		}
		if err := decode(r, &body); err != nil {
			return nil, err
		}
		vhosts := -1
		if body.VHosts != nil {
			if *body.VHosts < 0 {
				return nil, badRequest("vhosts: negative")
			}
			vhosts = *body.VHosts
		}
		return ok(svc.addHost(ctx, body.IP, body.Tag, vhosts, by))
	})
	h("GET /api/v1/hosts/{ip}", func(ctx context.Context, svc *service, r *http.Request, _ string) (any, error) {
		ip, err := parseIP(r.PathValue("ip"))
		if err != nil {
			return nil, err
		}
		hosts, err := svc.hosts(ctx)
		if err != nil {
			return nil, err
		}
		for _, h := range hosts {
			if h.IP == ip {
				one := []HostStatus{h}
				if gws, err := svc.ops.Gateways(ctx); err == nil {
					addSessions(one, gws)
				}
				return one[0], nil
			}
		}
		return nil, fmt.Errorf("%w: %s", ErrUnknownHost, ip)
	})
	h("PUT /api/v1/hosts/{ip}", func(ctx context.Context, svc *service, r *http.Request, by string) (any, error) {
		var body struct {
			VHosts *int `json:"vhosts"`
		}
		if err := decode(r, &body); err != nil {
			return nil, err
		}
		if body.VHosts == nil || *body.VHosts < 0 {
			return nil, badRequest("vhosts: a count 0..1000 is needed")
		}
		return ok(svc.updateHost(ctx, r.PathValue("ip"), "", *body.VHosts, by))
	})
	h("DELETE /api/v1/hosts/{ip}", func(ctx context.Context, svc *service, r *http.Request, by string) (any, error) {
		return ok(svc.remove(ctx, r.PathValue("ip"), by))
	})
	h("POST /api/v1/hosts/{ip}/up", func(ctx context.Context, svc *service, r *http.Request, by string) (any, error) {
		return ok(svc.up(ctx, r.PathValue("ip"), by))
	})
	h("POST /api/v1/hosts/{ip}/down", func(ctx context.Context, svc *service, r *http.Request, by string) (any, error) {
		return ok(svc.down(ctx, r.PathValue("ip"), by))
	})
	h("POST /api/v1/hosts/{ip}/flush", func(ctx context.Context, svc *service, r *http.Request, by string) (any, error) {
		ip := r.PathValue("ip")
		if ip == "all" {
			ip = ""
		} else if ip == "" {
			return nil, badRequest("flush: a host or all")
		}
		return ok(svc.flush(ctx, ip, by))
	})
	h("POST /api/v1/hosts/{ip}/drain", func(ctx context.Context, svc *service, r *http.Request, by string) (any, error) {
		var o DrainOptions
		q := r.URL.Query()
		for name, d := range map[string]*time.Duration{"kick_after": &o.KickAfter, "timeout": &o.Timeout} {
			if v := q.Get(name); v != "" {
				var err error
				if *d, err = time.ParseDuration(v); err != nil || *d < 0 {
					return nil, badRequest("%s: not a duration: %q", name, v)
				}
			}
		}
		// A drain waits as long as it was told to, not OpTimeout.
		limit := a.opTimeout()
		if o.Timeout > 0 {
			limit = o.Timeout + time.Minute
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), limit)
		defer cancel()
		return ok(svc.drain(dctx, r.PathValue("ip"), o, by))
	})
	h("POST /api/v1/hosts/{ip}/undrain", func(ctx context.Context, svc *service, r *http.Request, by string) (any, error) {
		return ok(svc.undrain(ctx, r.PathValue("ip"), by))
	})
	h("GET /api/v1/users/{user}", func(ctx context.Context, svc *service, r *http.Request, _ string) (any, error) {
		return svc.lookup(ctx, r.PathValue("user"), r.URL.Query().Get("tag"))
	})
	h("POST /api/v1/users/{user}/move", func(ctx context.Context, svc *service, r *http.Request, by string) (any, error) {
		var body struct {
			Host string `json:"host"`
		}
		if err := decode(r, &body); err != nil {
			return nil, err
		}
		return ok(svc.move(ctx, r.PathValue("user"), body.Host, by))
	})
	h("POST /api/v1/users/{user}/kick", func(ctx context.Context, svc *service, r *http.Request, by string) (any, error) {
		n, err := svc.kick(ctx, r.PathValue("user"), by)
		if err != nil {
			return nil, err
		}
		return map[string]any{"ok": true, "kicked": n}, nil
	})
	h("GET /api/v1/map", func(ctx context.Context, svc *service, r *http.Request, _ string) (any, error) {
		users, err := svc.users(ctx, r.URL.Query().Get("host"))
		if users == nil {
			users = []UserEntry{}
		}
		return users, err
	})
}

func ok(err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return map[string]bool{"ok": true}, nil
}

// decode reads a JSON body strictly (unknown fields are errors), at most
// 64 KiB.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("request body: %v", err)
	}
	return nil
}

func (a *API) opTimeout() time.Duration {
	if a.OpTimeout == 0 {
		return 2 * time.Minute
	}
	return a.OpTimeout
}

func (a *API) log() *slog.Logger {
	if a.Log == nil {
		return slog.Default()
	}
	return a.Log
}

func (a *API) serve(w http.ResponseWriter, r *http.Request, svc *service, fn func(context.Context, *service, *http.Request, string) (any, error)) {
	timeout := a.opTimeout()
	// A client that hangs up does not cut an operation in half.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), timeout)
	defer cancel()
	by := "api:" + Caller(r.Context())
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		by += "@" + host
	}
	v, err := fn(ctx, svc, r, by)
	status := http.StatusOK
	if err != nil {
		status = errStatus(err)
		msg := err.Error()
		if status == http.StatusGatewayTimeout {
			msg = fmt.Sprintf("not done within %v; the move goes on, every gateway finishes it: %v", timeout, err)
		}
		v = map[string]string{"error": msg}
	}
	if r.Method != http.MethodGet {
		if err != nil {
			a.log().Warn("admin: "+r.Method+" "+r.URL.Path, "by", by, "status", status, "reason", err)
		} else {
			a.log().Info("admin: "+r.Method+" "+r.URL.Path, "by", by, "status", status)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// errStatus maps the service's errors to HTTP statuses.
func errStatus(err error) int {
	var bad *BadRequest
	var he *hashError
	switch {
	case errors.As(err, &bad), errors.As(err, &he), errors.Is(err, ErrVHostsTooLarge):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnknownHost):
		return http.StatusNotFound
	case errors.Is(err, ErrTagChange), errors.Is(err, ErrLastHost), errors.Is(err, ErrHostDown), errors.Is(err, ErrNoAssignment):
		return http.StatusConflict
	case errors.Is(err, ErrNotImplemented):
		return http.StatusNotImplemented
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrDrainTimeout):
		return http.StatusGatewayTimeout
	}
	return http.StatusServiceUnavailable
}
