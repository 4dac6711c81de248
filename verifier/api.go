package verifier

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/store"
)

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the API's OpenAPI 3 document.
func OpenAPI() []byte { return openAPI }

// requestTimeout bounds one request's handling (reading the body aside).
const requestTimeout = 30 * time.Second

// bigBody is the body limit above which an endpoint's bodies count against
// Config.MaxBodyBytes.
const bigBody = 1 << 20

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	small := int64(64 << 10)
	// attester endpoints
	mux.Handle("POST /v1/nodes/{node}/enroll", s.endpoint(attest.MaxEnrollSize, false, s.handleEnroll))
	mux.Handle("POST /v1/nodes/{node}/activate", s.endpoint(small, false, s.handleActivate))
	mux.Handle("POST /v1/nodes/{node}/challenge", s.endpoint(attest.MaxChallengeRequestSize, false, s.handleChallenge))
	mux.Handle("POST /v1/nodes/{node}/evidence", s.endpoint(attest.MaxEvidenceSize, false, s.handleEvidence))
	// operator endpoints
	mux.Handle("POST /v1/nodes", s.endpoint(attest.MaxNodeAddSize, true, s.handleNodeAdd))
	mux.Handle("GET /v1/nodes", s.endpoint(0, true, s.handleNodeList))
	mux.Handle("GET /v1/nodes/{node}", s.endpoint(0, true, s.handleNodeShow))
	mux.Handle("DELETE /v1/nodes/{node}", s.endpoint(0, true, s.handleNodeRemove))
	mux.Handle("POST /v1/nodes/{node}/check", s.endpoint(attest.MaxEvidenceSize, true, s.handleCheck))
	// public
	mux.Handle("GET /v1/ear/keys", s.endpoint(0, false, s.handleEARKeys))
	mux.Handle("GET /openapi.yaml", s.endpoint(0, false, func(w http.ResponseWriter, r *http.Request, _ []byte) error {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(openAPI)
		return nil
	}))
	s.fleetRoutes(mux)
	mux.Handle("GET /healthz", s.endpoint(0, false, func(w http.ResponseWriter, r *http.Request, _ []byte) error {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return nil
	}))
	return mux
}

// apiError is an error with an HTTP status and a failure id, written as
// {"error": "...", "id": "..."}.
type apiError struct {
	status int
	id     string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func apiErr(status int, id, format string, args ...any) *apiError {
	return &apiError{status: status, id: id, msg: fmt.Sprintf(format, args...)}
}

// ErrorBody is the JSON of every error response.
type ErrorBody struct {
	Error string `json:"error"`
	ID    string `json:"id,omitempty"`
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, body []byte) error

// endpoint wraps a handler with the endpoint's body limit (0: no body),
// the request timeout, the operator check, and error responses.
func (s *Server) endpoint(limit int64, operator bool, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		err := func() error {
			if operator {
				if err := s.checkOperator(r); err != nil {
					return err
				}
			}
			var body []byte
			if limit > bigBody {
				// Large bodies share a memory budget: a flood of 64 MiB
				// uploads waits (or times out) instead of exhausting memory.
				n := r.ContentLength
				if n < 0 {
					return apiErr(http.StatusLengthRequired, "request.length", "a request body this large needs a Content-Length")
				}
				if n > limit {
					return apiErr(http.StatusRequestEntityTooLarge, "request.too_large", "request body larger than %d bytes", limit)
				}
				if err := s.bodies.Acquire(r.Context(), max(n, 1)); err != nil {
					return apiErr(http.StatusServiceUnavailable, "verifier.busy", "the verifier is busy; retry later")
				}
				defer s.bodies.Release(max(n, 1))
			}
			if limit > 0 {
				b, err := readBody(w, r, limit)
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					return apiErr(http.StatusRequestEntityTooLarge, "request.too_large", "request body larger than %d bytes", limit)
				}
				if err != nil {
					return apiErr(http.StatusBadRequest, "request.body", "reading the request body: %v", err)
				}
				body = b
			}
			return h(w, r, body)
		}()
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				ae = s.internal(r, err)
			}
			s.metrics.refused(r, ae.id)
			writeJSON(w, ae.status, ErrorBody{Error: ae.msg, ID: ae.id})
			s.log.Debug("request failed", "method", r.Method, "path", r.URL.Path, "status", ae.status, "id", ae.id, "err", ae.msg,
				"remote", r.RemoteAddr, "ms", time.Since(start).Milliseconds())
		}
	})
}

// internal maps an unexpected error to 503 (store) or 500 and logs it.
func (s *Server) internal(r *http.Request, err error) *apiError {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return apiErr(http.StatusServiceUnavailable, "request.timeout", "the request took too long")
	}
	s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	s.metrics.dbError("request")
	if errors.Is(err, store.ErrClosed) {
		return apiErr(http.StatusServiceUnavailable, "verifier.stopping", "the verifier is shutting down")
	}
	return apiErr(http.StatusServiceUnavailable, "verifier.store", "the verifier could not complete the request; retry later")
}

func (s *Server) checkOperator(r *http.Request) error {
	if s.cfg.AdminToken != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.AdminToken)) != 1 {
			return apiErr(http.StatusUnauthorized, "operator.token", "operator endpoints need the bearer token")
		}
		return nil
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return apiErr(http.StatusForbidden, "operator.remote", "operator endpoints are served to loopback clients only (configure an operator token)")
	}
	return nil
}

// readBody reads a request body of at most limit bytes, in one allocation
// when the length is announced.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	if n := r.ContentLength; n >= 0 && n <= limit {
		b := make([]byte, n)
		if _, err := io.ReadFull(body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return io.ReadAll(body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if a, ok := v.(interface{ AppendJSON([]byte) []byte }); ok {
		// A round's answers write their own JSON: json.Encoder's bytes.
		b := append(a.AppendJSON(make([]byte, 0, 512)), '\n')
		h.Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(status)
		w.Write(b)
		return
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// nodeName reads and checks the {node} path segment.
func nodeName(r *http.Request) (string, error) {
	n := r.PathValue("node")
	if err := attest.ValidNodeName(n); err != nil {
		return "", apiErr(http.StatusBadRequest, "request.node", "%v", err)
	}
	return n, nil
}

// nodeRequest reads a request's node name and decodes its body with
// decode; a body that does not decode is a bad request.
func nodeRequest[T any](r *http.Request, body []byte, decode func([]byte) (T, error)) (string, T, error) {
	var zero T
	name, err := nodeName(r)
	if err != nil {
		return "", zero, err
	}
	req, err := decode(body)
	if err != nil {
		return "", zero, badRequest(err)
	}
	return name, req, nil
}

// getNode reads a node, mapping absence to 404.
func (s *Server) getNode(ctx context.Context, name string) (*store.Node, error) {
	n, err := s.st.GetNode(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apiErr(http.StatusNotFound, "node.unknown", "no node %q (add it with imago verifier node add)", name)
	}
	return n, err
}

func badRequest(err error) error {
	return apiErr(http.StatusBadRequest, "request.malformed", "%v", err)
}

func (s *Server) handleEARKeys(w http.ResponseWriter, r *http.Request, _ []byte) error {
	if s.cfg.EAR == nil {
		return apiErr(http.StatusNotFound, "ear.disabled", "this verifier issues no EAR tokens")
	}
	writeJSON(w, http.StatusOK, s.cfg.EAR.JWKS())
	return nil
}
