// Package web is the verifier's fleet page: one HTML page, a script and a
// style sheet, embedded in the binary (no build step, nothing fetched from
// elsewhere: the Content-Security-Policy allows this origin only). The
// page reads the verifier's API: /v1/fleet (counts by state, replicas,
// leases), /v1/nodes (every node with its state, last verdict and
// failures), /v1/nodes/{node} (one node's history), and follows
// /v1/events (server-sent events) for live changes, falling back to
// polling /v1/fleet and /v1/nodes once an interval when the stream is
// unavailable. Where the verifier wants an operator token, the page asks
// for it and keeps it in the tab's session storage.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// Handler serves the page at / and its assets under /static/.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic("imago: internal error: web assets: " + err.Error())
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		if r.URL.Path == "/" {
			b, _ := static.ReadFile("static/index.html")
			h.Set("Content-Type", "text/html; charset=utf-8")
			w.Write(b)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = strings.TrimPrefix(r.URL.Path, "/static")
		files.ServeHTTP(w, r2)
	})
}
