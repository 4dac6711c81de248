package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
)

// ErrNotRunning: nothing answers on the socket.
var ErrNotRunning = errors.New("agent: no agent is listening")

// call sends one request to the agent at socket and reads its response.
func call(ctx context.Context, socket string, req request) (*response, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("%w on %s: %w", ErrNotRunning, socket, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("agent: %s: %w", socket, err)
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("agent: %s: reading the answer: %w", socket, err)
	}
	var resp response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("agent: %s: bad answer: %w", socket, err)
	}
	return &resp, nil
}

// RemoteError is an error the agent answered with.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return e.Msg }

// MeasurePaths asks the agent at socket to measure paths (made absolute
// here) and returns one Result per path, once every entry is listed,
// extended and exported (or queued durably while deferred).
func MeasurePaths(ctx context.Context, socket string, paths []string) ([]Result, error) {
	abs := make([]string, len(paths))
	for i, p := range paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		abs[i] = a
	}
	resp, err := call(ctx, socket, request{Op: "measure", Paths: abs})
	if err != nil {
		return nil, err
	}
	if resp.Error != "" {
		return nil, &RemoteError{resp.Error}
	}
	return resp.Results, nil
}

// QueryStatus asks the agent at socket for its status.
func QueryStatus(ctx context.Context, socket string) (Status, error) {
	resp, err := call(ctx, socket, request{Op: "status"})
	if err != nil {
		return Status{}, err
	}
	if resp.Error != "" || resp.Status == nil {
		return Status{}, &RemoteError{resp.Error}
	}
	return *resp.Status, nil
}

// RequestLate asks the agent at socket to run its late stage now (`imago
// late`) and returns its status afterwards.
func RequestLate(ctx context.Context, socket string) (Status, error) {
	resp, err := call(ctx, socket, request{Op: "late"})
	if err != nil {
		return Status{}, err
	}
	var st Status
	if resp.Status != nil {
		st = *resp.Status
	}
	if resp.Error != "" {
		return st, &RemoteError{resp.Error}
	}
	return st, nil
}
