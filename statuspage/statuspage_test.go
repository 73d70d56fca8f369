// SPDX-License-Identifier: Apache-2.0

package statuspage

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// checkSecurityHeaders: every answer, a 404 too, carries the policy.
func checkSecurityHeaders(t *testing.T, target string, rec *httptest.ResponseRecorder) {
	t.Helper()
	h := rec.Header()
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q", target, got)
	}
	csp := h.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-") {
		t.Errorf("%s: Content-Security-Policy %q: want default-src 'self' and no unsafe-*", target, csp)
	}
	if !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("%s: Content-Security-Policy %q lets other sites frame the page", target, csp)
	}
}

func TestServesPageAndAssets(t *testing.T) {
	h := Handler()
	for _, tc := range []struct {
		target, contentType, cacheControl, contains string
	}{
		{"/", "text/html; charset=utf-8", "no-store", `<meta name="viewport"`},
		{"/static/app.js", "text/javascript; charset=utf-8", "no-cache", "api/v1/status"},
		{"/static/style.css", "text/css; charset=utf-8", "no-cache", "@media"},
	} {
		rec := get(t, h, http.MethodGet, tc.target, nil)
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s: %d", tc.target, rec.Code)
			continue
		}
		if got := rec.Header().Get("Content-Type"); got != tc.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.target, got, tc.contentType)
		}
		if got := rec.Header().Get("Cache-Control"); got != tc.cacheControl {
			t.Errorf("GET %s: Cache-Control %q, want %q", tc.target, got, tc.cacheControl)
		}
		if !strings.Contains(rec.Body.String(), tc.contains) {
			t.Errorf("GET %s: body lacks %q", tc.target, tc.contains)
		}
		checkSecurityHeaders(t, tc.target, rec)

		// Revalidation is a 304 without a body.
		etag := rec.Header().Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", tc.target)
			continue
		}
		again := get(t, h, http.MethodGet, tc.target, map[string]string{"If-None-Match": etag})
		if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
			t.Errorf("GET %s with If-None-Match: %d, %d bytes; want 304, none", tc.target, again.Code, again.Body.Len())
		}
	}
}

func TestUnknownPathsAre404(t *testing.T) {
	h := Handler()
	for _, target := range []string{
		"/index.html", "/static/", "/static/nope.js", "/static/index.html",
		"/static/app.js/x", "/favicon.ico", "/api/v1/status", "/statuspage",
	} {
		rec := get(t, h, http.MethodGet, target, nil)
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", target, rec.Code)
		}
		checkSecurityHeaders(t, target, rec)
	}
	if rec := get(t, h, http.MethodPost, "/", nil); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", rec.Code)
	}
	if rec := get(t, h, http.MethodHead, "/", nil); rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Errorf("HEAD /: %d with %d bytes, want 200 and no body", rec.Code, rec.Body.Len())
	}
}

// TestEveryFileIsServed: a file added under static/ with a type the
// handler does not know would silently be missing from the page.
func TestEveryFileIsServed(t *testing.T) {
	h := Handler()
	err := fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if rec := get(t, h, http.MethodGet, "/"+p, nil); rec.Code != http.StatusOK {
			t.Errorf("embedded %s is answered %d", p, rec.Code)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOnlyLocalReferences: the admin listener is often on a network
// without the internet, and the page must not leak that it is being
// looked at to anyone.
func TestOnlyLocalReferences(t *testing.T) {
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		for _, bad := range []string{"http://", "https://", "@import", "url("} {
			if strings.Contains(strings.ToLower(string(body)), bad) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	page, _ := files.ReadFile("index.html")
	h := Handler()
	refs := regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*"([^"]*)"`).FindAllStringSubmatch(string(page), -1)
	if len(refs) < 2 {
		t.Fatalf("index.html references %d files, want the script and the style sheet", len(refs))
	}
	for _, m := range refs {
		ref := m[1]
		// Relative, so that a reverse proxy may serve the page under a prefix.
		if strings.HasPrefix(ref, "/") || strings.Contains(ref, ":") {
			t.Errorf("index.html references %q: want a relative path", ref)
			continue
		}
		if rec := get(t, h, http.MethodGet, "/"+ref, nil); rec.Code != http.StatusOK {
			t.Errorf("index.html references %q, which is answered %d", ref, rec.Code)
		}
	}
}

// TestCSPClean: nothing in the page needs what the policy forbids, which
// a browser would refuse silently (the page would just not work).
func TestCSPClean(t *testing.T) {
	page, _ := files.ReadFile("index.html")
	html := string(page)
	if m := regexp.MustCompile(`(?i)\son[a-z]+\s*=`).FindString(html); m != "" {
		t.Errorf("index.html has an inline event handler: %q", m)
	}
	if m := regexp.MustCompile(`(?i)\sstyle\s*=`).FindString(html); m != "" {
		t.Errorf("index.html has a style attribute: %q", m)
	}
	if strings.Contains(strings.ToLower(html), "<style") {
		t.Error("index.html has a <style> element")
	}
	scripts := regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`).FindAllStringSubmatch(html, -1)
	if len(scripts) == 0 {
		t.Error("index.html loads no script")
	}
	for _, s := range scripts {
		if !strings.Contains(s[1], "src=") || strings.TrimSpace(s[2]) != "" {
			t.Errorf("index.html has an inline script: %q", s[0])
		}
	}
	if strings.Contains(strings.ToLower(html), "javascript:") {
		t.Error("index.html has a javascript: URL")
	}

	js, _ := files.ReadFile("static/app.js")
	for _, bad := range []string{
		"eval(", "new Function", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
		"setAttribute('on", `setAttribute("on`, "setAttribute('style'", `setAttribute("style"`, "javascript:",
		"setTimeout('", `setTimeout("`, "setInterval('", `setInterval("`,
	} {
		if strings.Contains(string(js), bad) {
			t.Errorf("app.js uses %q, which the policy forbids (or which parses data as HTML)", bad)
		}
	}
}

// TestHooks: the attributes and classes that tests and operators'
// scripts read are still set by the script.
func TestHooks(t *testing.T) {
	js, _ := files.ReadFile("static/app.js")
	for _, hook := range []string{
		"data: { host: h.ip, state: st }", "cls: 'users'", "cls: 'sessions'",
		"data: { gateway: g.name }", "document.body.dataset.loaded = 'true'",
		"'api/v1/status'", "'api/v1/activity'", "credentials: 'same-origin'",
	} {
		if !strings.Contains(string(js), hook) {
			t.Errorf("app.js lacks %q", hook)
		}
	}
}
