package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/imago-ima/imago/internal/sdnotify"
)

// The socket protocol: one JSON request line, one JSON response line, per
// connection.
type request struct {
	Op    string   `json:"op"` // "measure", "status", "late"
	Paths []string `json:"paths,omitempty"`
}

type response struct {
	Status  *Status  `json:"status,omitempty"`
	Results []Result `json:"results,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// Limits of the socket protocol.
const (
	maxRequest      = 1 << 20
	maxPaths        = 4096
	requestDeadline = 5 * time.Minute
)

// Serve accepts requests on Config.Socket until ctx is done (then it returns
// nil) or the agent fails.
func (a *Agent) Serve(ctx context.Context) error {
	os.Remove(a.cfg.Socket) // a stale socket from a killed agent; we hold the lock
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: a.cfg.Socket, Net: "unix"})
	if err != nil {
		return fmt.Errorf("agent: listen: %w", err)
	}
	if err := os.Chmod(a.cfg.Socket, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("agent: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer l.Close()
	if a.cfg.Ready != nil {
		close(a.cfg.Ready)
	}
	st := a.Status()
	a.log.Info("listening", "socket", a.cfg.Socket, "state", st.State)
	a.notify(fmt.Sprintf("%s\nSTATUS=%s", sdnotify.Ready, st.State))

	errc := make(chan error, 1)
	go func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				errc <- err
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				a.serveConn(ctx, c)
			}()
		}
	}()
	select {
	case <-ctx.Done():
		a.log.Info("stopping")
		return nil
	case err := <-a.fatal:
		a.log.Error("agent failed", "err", err)
		return err
	case err := <-errc:
		return fmt.Errorf("agent: accept: %w", err)
	}
}

func (a *Agent) serveConn(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(requestDeadline))
	reply := func(r response) {
		b, _ := json.Marshal(r)
		c.Write(append(b, '\n'))
	}
	if err := a.checkPeer(c); err != nil {
		a.log.Warn("refused a client", "err", err)
		reply(response{Error: err.Error()})
		return
	}
	line, err := bufio.NewReader(&limitedReader{c, maxRequest}).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		reply(response{Error: fmt.Sprintf("agent: reading the request: %v", err)})
		return
	}
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		reply(response{Error: fmt.Sprintf("agent: bad request: %v", err)})
		return
	}
	switch req.Op {
	case "status":
		st := a.Status()
		reply(response{Status: &st})
	case "late":
		err := a.Late(TriggerRequest)
		st := a.Status()
		r := response{Status: &st}
		if err != nil {
			r.Error = err.Error()
			a.setFatal(err)
		}
		reply(r)
	case "measure":
		if len(req.Paths) > maxPaths {
			reply(response{Error: fmt.Sprintf("agent: %d paths, more than %d", len(req.Paths), maxPaths)})
			return
		}
		reply(response{Results: a.Measure(req.Paths)})
	default:
		reply(response{Error: fmt.Sprintf("agent: unknown op %q", req.Op)})
	}
}

// checkPeer admits root, the agent's own uid, and Config.SocketUIDs.
func (a *Agent) checkPeer(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var (
		cred *syscall.Ucred
		cerr error
	)
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("agent: peer credentials: %w", cerr)
	}
	uid := int(cred.Uid)
	if uid == 0 || uid == os.Getuid() || slices.Contains(a.cfg.SocketUIDs, uid) {
		return nil
	}
	return fmt.Errorf("agent: uid %d may not use this socket", uid)
}

type limitedReader struct {
	c *net.UnixConn
	n int
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("agent: request too long")
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.c.Read(p)
	l.n -= n
	return n, err
}
