package verifier

import (
	"errors"
	"net/http"

	"github.com/imago-ima/imago/verifier/web"
)

// fleetRoutes adds the fleet's endpoints: metrics, the fleet's status, its
// live updates and the fleet page.
func (s *Server) fleetRoutes(mux *http.ServeMux) {
	mux.Handle("GET /metrics", s.metrics.handler())
	mux.Handle("GET /v1/fleet", s.endpoint(0, true, s.handleFleet))
	// The event stream outlives the request timeout: it has its own wrapper.
	mux.Handle("GET /v1/events", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := s.checkOperator(r)
		if err == nil {
			err = s.handleEvents(w, r, nil)
		}
		var ae *apiError
		if errors.As(err, &ae) {
			s.metrics.refused(r, ae.id)
			writeJSON(w, ae.status, ErrorBody{Error: ae.msg, ID: ae.id})
		}
	}))
	page := web.Handler()
	mux.Handle("GET /{$}", page)
	mux.Handle("GET /static/", page)
}

func (s *Server) handleFleet(w http.ResponseWriter, r *http.Request, _ []byte) error {
	st, err := s.fleet.Status(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
