package verifier

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/fleet"
)

// Live updates for the fleet page (GET /v1/events, server-sent events).
// One poller per replica reads what changed in the store (whichever
// replica wrote it) once a tick, while anyone listens, and sends every
// listener the fleet's status and the nodes whose state, verdict or
// failures changed.

// maxListeners bounds the event streams one replica serves.
const maxListeners = 64

// maxChanged bounds the nodes one tick reads.
const maxChanged = 20000

// changeOverlap re-reads changes this far back: writers' clocks (other
// replicas) may lag this one's.
const changeOverlap = 2 * time.Second

// Update is one event of the stream ("update").
type Update struct {
	Fleet *fleet.Status     `json:"fleet"`
	Nodes []attest.NodeView `json:"nodes"`
}

type events struct {
	s    *Server
	tick time.Duration

	mu      sync.Mutex
	subs    map[chan []byte]struct{}
	running bool
	stopped bool
	wg      sync.WaitGroup
	quit    chan struct{}
}

// stop ends the poller (the server stops) and waits for it.
func (e *events) stop() {
	e.mu.Lock()
	if !e.stopped {
		e.stopped = true
		close(e.quit)
	}
	e.mu.Unlock()
	e.wg.Wait()
}

func newEvents(s *Server) *events {
	tick := min(time.Second, s.cfg.Interval/2)
	return &events{s: s, tick: max(tick, 50*time.Millisecond), subs: map[chan []byte]struct{}{}, quit: make(chan struct{})}
}

// subscribe adds a listener, starting the poller if it is the first.
func (e *events) subscribe() (chan []byte, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.subs) >= maxListeners || e.stopped {
		return nil, false
	}
	ch := make(chan []byte, 4)
	e.subs[ch] = struct{}{}
	if !e.running {
		e.running = true
		e.wg.Add(1)
		go e.poll()
	}
	return ch, true
}

func (e *events) unsubscribe(ch chan []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.subs, ch)
}

// poll runs while anyone listens.
func (e *events) poll() {
	defer e.wg.Done()
	last := map[string]string{}
	since := time.Time{}
	t := time.NewTicker(e.tick)
	defer t.Stop()
	for {
		e.mu.Lock()
		if len(e.subs) == 0 {
			e.running = false
			e.mu.Unlock()
			return
		}
		e.mu.Unlock()
		start := time.Now()
		msg, err := e.update(since, last)
		if err != nil {
			e.s.metrics.dbError("events")
			e.s.log.Warn("fleet page: reading changes", "err", err)
		} else {
			since = start.Add(-changeOverlap)
			e.mu.Lock()
			for ch := range e.subs {
				select {
				case ch <- msg:
				default: // a slow listener misses a tick; the next carries the status
				}
			}
			e.mu.Unlock()
		}
		select {
		case <-t.C:
		case <-e.quit:
			e.mu.Lock()
			e.running = false
			e.mu.Unlock()
			return
		}
	}
}

// digest is what makes a node's change worth sending.
func digest(v *attest.NodeView) string {
	return v.State + "|" + v.Verdict + "|" + strconv.Itoa(len(v.Failures)) + "|" + strconv.FormatBool(v.Enrolled)
}

func (e *events) update(since time.Time, last map[string]string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.s.fleet.Status(ctx)
	if err != nil {
		return nil, err
	}
	u := Update{Fleet: st, Nodes: []attest.NodeView{}}
	if !since.IsZero() { // the first tick only sets the mark: listeners load the list themselves
		nodes, err := e.s.st.NodesChangedSince(ctx, since, maxChanged)
		if err != nil {
			return nil, err
		}
		for _, n := range nodes {
			v := e.s.view(ctx, n, nil)
			if d := digest(&v); last[v.Node] != d {
				last[v.Node] = d
				u.Nodes = append(u.Nodes, v)
			}
		}
	}
	return json.Marshal(u)
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request, _ []byte) error {
	fl, ok := w.(http.Flusher)
	if !ok {
		return apiErr(http.StatusInternalServerError, "events.unsupported", "streaming is not supported here")
	}
	ch, ok := s.events.subscribe()
	if !ok {
		return apiErr(http.StatusServiceUnavailable, "events.busy", "too many event streams; poll /v1/fleet instead")
	}
	defer s.events.unsubscribe(ch)
	// The stream outlives the request timeout and the server's write
	// timeout: it ends when the client goes or the server stops.
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: 2000\n\n")
	fl.Flush()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	ctx := r.Context()
	for {
		select {
		case <-ctx.Done(): // the client went, or the server stops
			return nil
		case msg := <-ch:
			rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := fmt.Fprintf(w, "event: update\ndata: %s\n\n", msg); err != nil {
				return nil
			}
			fl.Flush()
		case <-keep.C:
			rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := fmt.Fprintf(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			fl.Flush()
		}
	}
}
