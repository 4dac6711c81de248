package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/imago-ima/imago/attest"
)

// ErrUnreachable: the request did not get an answer from the verifier.
var ErrUnreachable = errors.New("client: verifier unreachable")

// Error is an error answer from the verifier.
type Error struct {
	Status int
	ID     string
	Msg    string
}

func (e *Error) Error() string {
	if e.ID != "" {
		return fmt.Sprintf("verifier: %s (%s, HTTP %d)", e.Msg, e.ID, e.Status)
	}
	return fmt.Sprintf("verifier: %s (HTTP %d)", e.Msg, e.Status)
}

// Limits of answers.
const (
	maxAnswer = 64 << 20
	// Timeout bounds one request, a first round's upload included.
	Timeout = 2 * time.Minute
)

// Client is a verifier's API, at one or several replicas.
type Client struct {
	bases []*url.URL
	cur   atomic.Int32 // the replica in use
	hc    *http.Client
	token string
	retry Retry
	onErr func(endpoint string, err error)
}

// Retry is how a client goes through a fleet's replicas. A request that
// gets no answer, or an answer saying the verifier cannot serve it now
// (HTTP 429, 502, 503, 504), goes to the next replica at once; once every
// replica has failed it waits (Min, doubling up to Max) and goes round
// again, Rounds times in all. The client stays with the replica that
// answered. Every request is safe to send again: a round's evidence is
// applied once (a second copy is refused as challenge.used).
type Retry struct {
	Rounds   int
	Min, Max time.Duration
}

// Options configure a client.
type Options struct {
	// CA is PEM certificates to trust for the verifier's TLS (--ca); nil
	// uses the system roots.
	CA []byte
	// Token is the operator bearer token, if the verifier wants one.
	Token string
	// Transport overrides the HTTP transport (tests, load generators).
	Transport http.RoundTripper
	// Timeout bounds one request to one replica (default Timeout).
	Timeout time.Duration
	// Retry goes through the replicas (default: each once).
	Retry Retry
	// OnError is told of each failed attempt at a replica (logs, metrics).
	OnError func(endpoint string, err error)
}

// New makes a client for the verifier at base (https://HOST:PORT or
// http:// for a verifier without TLS).
func New(base string, o Options) (*Client, error) {
	return NewFleet([]string{base}, o)
}

// NewFleet makes a client for the replicas of a verifier fleet, tried in
// turn from one picked at random (see Retry).
func NewFleet(bases []string, o Options) (*Client, error) {
	if len(bases) == 0 {
		return nil, errors.New("client: no verifier URL")
	}
	var us []*url.URL
	for _, base := range bases {
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("client: verifier URL %q: want https://HOST:PORT", base)
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		us = append(us, u)
	}
	if o.Timeout <= 0 {
		o.Timeout = Timeout
	}
	if o.Retry.Rounds <= 0 {
		o.Retry.Rounds = 1
	}
	if o.Retry.Min <= 0 {
		o.Retry.Min = 250 * time.Millisecond
	}
	if o.Retry.Max < o.Retry.Min {
		o.Retry.Max = max(o.Retry.Min, 10*time.Second)
	}
	tr := o.Transport
	if tr == nil {
		t, err := TLSTransport(o.CA, 4)
		if err != nil {
			return nil, err
		}
		tr = t
	}
	c := &Client{bases: us, hc: &http.Client{Transport: tr, Timeout: o.Timeout}, token: o.Token, retry: o.Retry, onErr: o.OnError}
	// Attesters start at a replica of their own (at random), so that a
	// fleet's attesters spread over its replicas.
	c.cur.Store(int32(rand.IntN(len(us))))
	return c, nil
}

// Endpoint returns the URL of the replica in use.
func (c *Client) Endpoint() string { return c.bases[c.cur.Load()].String() }

// retryable reports whether another replica (or a later try) may serve a
// request that failed with err.
func retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		switch e.Status {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	return errors.Is(err, ErrUnreachable)
}

// TLSTransport returns an HTTP transport trusting caPEM, for callers that
// share one among many clients. http1 keeps to HTTP/1.1 (one request per
// connection at a time, as many separate hosts would), else HTTP/2 is
// negotiated.
func TLSTransport(caPEM []byte, maxConns int, http1 ...bool) (*http.Transport, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("client: no PEM certificate found")
		}
		t.TLSClientConfig.RootCAs = pool
	}
	t.MaxIdleConns = maxConns
	t.MaxIdleConnsPerHost = maxConns
	if len(http1) > 0 && http1[0] {
		t.ForceAttemptHTTP2 = false
		t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return t, nil
}

// do sends a request with a JSON body (nil for none) and decodes the JSON
// answer into out (nil to discard), going through the replicas as Retry
// says.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var b []byte
	if in != nil {
		var err error
		if b, err = json.Marshal(in); err != nil {
			return err
		}
	}
	wait := c.retry.Min
	n := int32(len(c.bases))
	for round := 1; ; round++ {
		var err error
		for range n {
			i := c.cur.Load()
			err = c.once(ctx, c.bases[i], method, path, b, in != nil, out)
			if err == nil || !retryable(err) {
				return err
			}
			if c.onErr != nil {
				c.onErr(c.bases[i].String(), err)
			}
			c.cur.CompareAndSwap(i, (i+1)%n)
		}
		if round >= c.retry.Rounds {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, c.retry.Max)
	}
}

// once sends a request to one replica.
func (c *Client) once(ctx context.Context, base *url.URL, method, path string, b []byte, hasBody bool, out any) error {
	var body io.Reader
	if hasBody {
		body = bytes.NewReader(b)
	}
	u := *base
	u.Path += path
	if i := strings.IndexByte(path, '?'); i >= 0 {
		u.Path, u.RawQuery = base.Path+path[:i], path[i+1:]
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	rsp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	defer rsp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(rsp.Body, maxAnswer+1))
	if err != nil {
		return fmt.Errorf("%w: reading the answer: %v", ErrUnreachable, err)
	}
	if len(data) > maxAnswer {
		return fmt.Errorf("client: answer larger than %d bytes", maxAnswer)
	}
	if rsp.StatusCode >= 300 {
		var eb struct {
			Error string `json:"error"`
			ID    string `json:"id"`
		}
		if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
			eb.Error = strings.TrimSpace(string(data))
			if len(eb.Error) > 200 {
				eb.Error = eb.Error[:200]
			}
		}
		return &Error{Status: rsp.StatusCode, ID: eb.ID, Msg: eb.Error}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("client: decoding the answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}

func nodePath(node string) string { return "/v1/nodes/" + url.PathEscape(node) }

// AddNode adds a node or changes its policy.
func (c *Client) AddNode(ctx context.Context, a *attest.NodeAdd) (*attest.NodeView, error) {
	var v attest.NodeView
	return &v, c.do(ctx, http.MethodPost, "/v1/nodes", a, &v)
}

// Nodes lists the nodes.
func (c *Client) Nodes(ctx context.Context) ([]attest.NodeView, error) {
	var out struct {
		Nodes []attest.NodeView `json:"nodes"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/nodes", nil, &out)
	return out.Nodes, err
}

// Node shows a node with up to history verdicts.
func (c *Client) Node(ctx context.Context, node string, history int) (*attest.NodeView, error) {
	var v attest.NodeView
	return &v, c.do(ctx, http.MethodGet, nodePath(node)+"?history="+strconv.Itoa(history), nil, &v)
}

// RemoveNode removes a node.
func (c *Client) RemoveNode(ctx context.Context, node string) error {
	return c.do(ctx, http.MethodDelete, nodePath(node), nil, nil)
}

// Enroll sends the enrollment request.
func (c *Client) Enroll(ctx context.Context, node string, r *attest.EnrollRequest) (*attest.EnrollChallenge, error) {
	var ch attest.EnrollChallenge
	return &ch, c.do(ctx, http.MethodPost, nodePath(node)+"/enroll", r, &ch)
}

// Activate returns the activated secret.
func (c *Client) Activate(ctx context.Context, node string, r *attest.ActivateRequest) (*attest.NodeView, error) {
	var v attest.NodeView
	return &v, c.do(ctx, http.MethodPost, nodePath(node)+"/activate", r, &v)
}

// Challenge asks for a challenge.
func (c *Client) Challenge(ctx context.Context, node string, r *attest.ChallengeRequest) (*attest.Challenge, error) {
	var ch attest.Challenge
	return &ch, c.do(ctx, http.MethodPost, nodePath(node)+"/challenge", r, &ch)
}

// Evidence sends evidence and returns the verdict.
func (c *Client) Evidence(ctx context.Context, node string, e *attest.Evidence) (*attest.Result, error) {
	var r attest.Result
	return &r, c.do(ctx, http.MethodPost, nodePath(node)+"/evidence", e, &r)
}

// Check judges offline evidence.
func (c *Client) Check(ctx context.Context, node string, e *attest.Evidence) (*attest.Result, error) {
	var r attest.Result
	return &r, c.do(ctx, http.MethodPost, nodePath(node)+"/check", e, &r)
}
