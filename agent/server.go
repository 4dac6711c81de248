package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/imago-ima/imago/internal/ctxio"
	"github.com/imago-ima/imago/internal/sdnotify"
)

// Limits of the socket protocol.
const (
	// MaxRequest bounds a request line (a measure request of MaxPaths
	// paths of a few hundred bytes each fits; MeasurePaths splits larger
	// ones).
	MaxRequest = 1 << 20
	// MaxPaths bounds the paths of one measure request.
	MaxPaths = 4096
	// requestReadTimeout bounds the wait for a request line: a client that
	// connects and says nothing is dropped.
	requestReadTimeout = 10 * time.Second
	// writeTimeout bounds writing an answer to a client that does not read.
	writeTimeout = 10 * time.Second
	// shutdownGrace bounds the wait for requests still running when the
	// agent stops (their contexts are canceled and their connections
	// closed first; a read stuck in the kernel is left behind).
	shutdownGrace = 5 * time.Second
	// acceptBackoffMax bounds the pause after a failed accept (no file
	// descriptors left, no memory).
	acceptBackoffMax = time.Second
)

// server serves the agent's socket.
type server struct {
	a *Agent
	l *net.UnixListener

	mu     sync.Mutex
	conns  map[*net.UnixConn]context.CancelFunc
	perUID map[uint32]int
	closed bool
	wg     sync.WaitGroup
}

// Serve accepts requests on Config.Socket until ctx is done (then it
// returns nil) or the agent fails (then it returns why). On return every
// connection is closed and every request's context canceled.
func (a *Agent) Serve(ctx context.Context) error {
	l, err := a.listen()
	if err != nil {
		return err
	}
	s := &server{a: a, l: l, conns: map[*net.UnixConn]context.CancelFunc{}, perUID: map[uint32]int{}}
	if a.cfg.Ready != nil {
		close(a.cfg.Ready)
	}
	st := a.Status()
	a.log.Info("listening", "socket", a.cfg.Socket, "state", st.State)
	a.notify(fmt.Sprintf("%s\nSTATUS=%s", sdnotify.Ready, st.State))

	errc := make(chan error, 1)
	go func() { errc <- s.accept(ctx) }()
	var ret error
	select {
	case <-ctx.Done():
		a.log.Info("stopping")
	case err := <-a.fatal:
		a.log.Error("agent failed", "err", err)
		ret = err
	case err := <-errc:
		ret = fmt.Errorf("agent: accept: %w", err)
	}
	s.shutdown()
	return ret
}

// listen creates the socket (mode 0600). The socket's lock (taken in New)
// is held, so no live agent serves this path: whatever socket is there is
// stale. Anything that is not a socket is left alone and refused.
func (a *Agent) listen() (*net.UnixListener, error) {
	if fi, err := os.Lstat(a.cfg.Socket); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%w: %s is %s, not a socket; not removing it", ErrSocketPath, a.cfg.Socket, ctxio.Kind(fi.Mode()))
		}
		if err := os.Remove(a.cfg.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("agent: removing the stale socket: %w", err)
		}
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: a.cfg.Socket, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("agent: listen: %w", err)
	}
	// Closing the listener must not remove a path someone else may have
	// put there since: the next agent removes a stale socket itself.
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(a.cfg.Socket, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	return l, nil
}

// accept accepts connections until the listener is closed. A failure that
// passes (no file descriptor left, no memory) pauses accepting, with a
// growing pause, and carries on: the connections already open keep being
// served and, as they close, make room.
func (s *server) accept(ctx context.Context) error {
	var backoff time.Duration
	for {
		c, err := s.l.AcceptUnix()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			if !temporaryAccept(err) {
				return err
			}
			if backoff == 0 {
				backoff = 5 * time.Millisecond
				s.a.log.Error("accept failed; pausing and retrying", "err", err)
			} else {
				backoff = min(2*backoff, acceptBackoffMax)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			continue
		}
		if backoff != 0 {
			s.a.log.Info("accepting again")
			backoff = 0
		}
		s.admit(ctx, c)
	}
}

// admit checks the peer and starts serving it, or tells it why not.
func (s *server) admit(ctx context.Context, c *net.UnixConn) {
	cred, err := peerCred(c)
	if err != nil {
		s.a.log.Warn("refused a client", "err", err)
		reject(c, response{Error: err.Error(), Code: CodeRefused})
		return
	}
	if !s.a.allowed(cred.uid) {
		s.a.log.Warn("refused a client", "uid", cred.uid, "pid", cred.pid)
		reject(c, response{Error: fmt.Sprintf("agent: uid %d may not use this socket (only root and uid %d may)", cred.uid, os.Getuid()), Code: CodeRefused})
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		reject(c, response{Error: "agent: stopping", Code: CodeStopping})
		return
	}
	if s.perUID[cred.uid] >= s.a.cfg.MaxConnsPerUID {
		s.mu.Unlock()
		s.a.log.Warn("refused a client: too many connections", "uid", cred.uid, "pid", cred.pid, "limit", s.a.cfg.MaxConnsPerUID)
		reject(c, response{Error: fmt.Sprintf("agent: uid %d has %d connections open, the most allowed; retry later", cred.uid, s.a.cfg.MaxConnsPerUID), Code: CodeBusy})
		return
	}
	rctx, cancel := context.WithCancel(ctx)
	s.conns[c] = cancel
	s.perUID[cred.uid]++
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.conns, c)
			s.perUID[cred.uid]--
			if s.perUID[cred.uid] == 0 {
				delete(s.perUID, cred.uid)
			}
			s.mu.Unlock()
			cancel()
			c.Close()
		}()
		s.a.serveConn(rctx, cancel, c)
	}()
}

// reject answers a connection that is not served, and closes it.
func reject(c *net.UnixConn, r response) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	writeResponse(c, r)
	c.Close()
}

func writeResponse(w io.Writer, r response) error {
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(response{Error: "agent: encoding the answer: " + err.Error(), Code: CodeInternal})
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// shutdown stops accepting, cancels every request, closes every
// connection, and waits (up to shutdownGrace) for their handlers.
func (s *server) shutdown() {
	s.mu.Lock()
	s.closed = true
	s.l.Close()
	for c, cancel := range s.conns {
		cancel()
		c.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		s.a.log.Warn("requests still running at shutdown; not waiting for them")
	}
}

// allowed admits root, the agent's own uid and Config.SocketUIDs.
func (a *Agent) allowed(uid uint32) bool {
	return uid == 0 || int(uid) == os.Getuid() || slices.Contains(a.cfg.SocketUIDs, int(uid))
}

// serveConn reads one request and answers it. cancel cancels ctx; it is
// called when the client goes away while the request runs.
func (a *Agent) serveConn(ctx context.Context, cancel context.CancelFunc, c *net.UnixConn) {
	c.SetReadDeadline(time.Now().Add(requestReadTimeout))
	reply := func(r response) {
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		writeResponse(c, r)
	}
	line, err := readLine(bufio.NewReaderSize(c, 4096), MaxRequest)
	if err != nil {
		if errors.Is(err, ErrTooLong) {
			reply(response{Error: fmt.Sprintf("agent: the request is longer than %d bytes", MaxRequest), Code: CodeTooLong})
		} else if ctx.Err() == nil {
			reply(response{Error: fmt.Sprintf("agent: reading the request: %v", err), Code: CodeBadRequest})
		}
		return
	}
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		reply(response{Error: fmt.Sprintf("agent: bad request: %v", err), Code: CodeBadRequest})
		return
	}
	// The client waits for the answer and sends nothing more: a read that
	// returns means it went away (or broke the protocol). Either way the
	// request is canceled.
	c.SetReadDeadline(time.Time{})
	go func() {
		var b [1]byte
		if n, _ := c.Read(b[:]); n == 0 && !peerGone(c) {
			return // the client only closed its writing half: it still reads
		}
		cancel()
	}()
	switch req.Op {
	case "status":
		st := a.Status()
		reply(response{Status: &st})
	case "late":
		err := a.Late(TriggerRequest)
		st := a.Status()
		r := response{Status: &st}
		if err != nil {
			r.Error, r.Code = err.Error(), codeOf(err)
			a.setFatal(err)
		}
		reply(r)
	case "measure":
		if len(req.Paths) > MaxPaths {
			reply(response{Error: fmt.Sprintf("agent: %d paths, more than %d", len(req.Paths), MaxPaths), Code: CodeBadRequest})
			return
		}
		paths := make([]string, len(req.Paths))
		for i, p := range req.Paths {
			paths[i] = string(p)
		}
		res := a.Measure(ctx, paths)
		if ctx.Err() != nil {
			return // the client went away, or the agent is stopping
		}
		w := make([]wireResult, len(res))
		for i, r := range res {
			w[i] = toWire(r)
		}
		reply(response{Results: w})
	default:
		reply(response{Error: fmt.Sprintf("agent: unknown op %q", req.Op), Code: CodeBadRequest})
	}
}

// readLine reads one line of at most max bytes (the newline excluded); a
// longer line is ErrTooLong.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max+1 {
			return nil, ErrTooLong
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && len(line) > 0:
			return line, nil
		}
		return nil, err
	}
}
