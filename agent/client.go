package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"syscall"
)

// ErrNotRunning: nothing answers on the socket (no socket file, or nothing
// listening on it).
var ErrNotRunning = errors.New("agent: no agent is listening")

// call sends one request to the agent at socket and reads its response.
// An error the agent answered with is a *RemoteError.
func call(ctx context.Context, socket string, req request) (*response, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			return nil, &RemoteError{Code: CodeRefused,
				Msg: fmt.Sprintf("agent: %s: permission denied: the agent admits root and its own uid only", socket)}
		}
		return nil, fmt.Errorf("%w on %s: %w", ErrNotRunning, socket, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("agent: encoding the request: %w", err)
	}
	if len(b) > MaxRequest {
		return nil, &RemoteError{Code: CodeTooLong, Msg: fmt.Sprintf("agent: the request is %d bytes, more than %d", len(b), MaxRequest)}
	}
	// A write error does not end the call: the agent may have answered
	// (a refusal, a request too long) and closed before reading it all.
	_, werr := c.Write(append(b, '\n'))
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if werr != nil {
			err = werr
		}
		return nil, fmt.Errorf("agent: %s: no answer: %w", socket, err)
	}
	var resp response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("agent: %s: bad answer: %w", socket, err)
	}
	if resp.Error != "" && resp.Status == nil {
		return nil, &RemoteError{Code: resp.Code, Msg: resp.Error}
	}
	return &resp, nil
}

// MeasurePaths asks the agent at socket to measure paths (made absolute
// here) and returns one Result per path, once every entry is listed,
// extended and exported (or queued durably while deferred). Paths are byte
// strings: any name the filesystem allows is measured as that file. More
// paths than one request carries are sent in several requests.
func MeasurePaths(ctx context.Context, socket string, paths []string) ([]Result, error) {
	abs := make([]Bytes, len(paths))
	for i, p := range paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		abs[i] = Bytes(a)
	}
	out := make([]Result, 0, len(paths))
	for len(abs) > 0 {
		n := batch(abs)
		resp, err := call(ctx, socket, request{Op: "measure", Paths: abs[:n]})
		if err != nil {
			return out, err
		}
		if len(resp.Results) != n {
			return out, fmt.Errorf("agent: %s: %d results for %d paths", socket, len(resp.Results), n)
		}
		for _, w := range resp.Results {
			out = append(out, fromWire(w))
		}
		abs = abs[n:]
	}
	return out, nil
}

// batch returns how many of paths fit one request: at most MaxPaths, and
// at most MaxRequest bytes encoded. At least one path goes, so that a path
// too long for any request is answered CodeTooLong.
func batch(paths []Bytes) int {
	size := len(`{"op":"measure","paths":[]}`)
	for i, p := range paths {
		b, _ := p.MarshalJSON()
		size += len(b) + 1
		if i == MaxPaths || (i > 0 && size > MaxRequest) {
			return i
		}
	}
	return len(paths)
}

// QueryStatus asks the agent at socket for its status.
func QueryStatus(ctx context.Context, socket string) (Status, error) {
	resp, err := call(ctx, socket, request{Op: "status"})
	if err != nil {
		return Status{}, err
	}
	if resp.Status == nil {
		return Status{}, &RemoteError{Code: CodeInternal, Msg: "agent: no status in the answer"}
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
		return st, &RemoteError{Code: resp.Code, Msg: resp.Error}
	}
	return st, nil
}
