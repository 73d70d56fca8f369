// SPDX-License-Identifier: Apache-2.0

package statuspage

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"time"
)

//go:embed index.html static
var files embed.FS

// contentSecurityPolicy allows the page its own origin and nothing else:
// no inline script or style attribute (the script sizes the bars through
// the CSSOM, which the policy does not govern), no frames around it, no
// form posting anywhere.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// contentTypes are the types of the files served, by extension; a file of
// another kind under static/ is not served.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

type asset struct {
	body        []byte
	contentType string
	etag        string
}

func newAsset(name string, body []byte) asset {
	sum := sha256.Sum256(body)
	return asset{body: body, contentType: contentTypes[path.Ext(name)], etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

// Handler serves the page at "/" and its files at "/static/{file}";
// anything else is 404. Mount it at the root of the admin listener's mux
// (the page fetches "api/v1/…" relative to itself).
func Handler() http.Handler {
	page, err := files.ReadFile("index.html")
	if err != nil {
		panic("statuspage: index.html not embedded: " + err.Error())
	}
	index := newAsset("index.html", page)
	static := map[string]asset{}
	entries, _ := fs.ReadDir(files, "static")
	for _, e := range entries {
		if _, known := contentTypes[path.Ext(e.Name())]; !known || e.IsDir() {
			continue
		}
		body, err := files.ReadFile("static/" + e.Name())
		if err != nil {
			panic("statuspage: " + err.Error())
		}
		static[e.Name()] = newAsset(e.Name(), body)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		// The page is tiny; never a stale one after an upgrade.
		serve(w, r, index, "no-store")
	})
	mux.HandleFunc("GET /static/{file}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := static[r.PathValue("file")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		// Names carry no version: the browser revalidates each time,
		// and the ETag makes that a 304.
		serve(w, r, a, "no-cache")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		mux.ServeHTTP(w, r)
	})
}

func serve(w http.ResponseWriter, r *http.Request, a asset, cacheControl string) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", cacheControl)
	h.Set("ETag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
