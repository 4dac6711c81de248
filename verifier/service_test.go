package verifier

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/attester"
	"github.com/imago-ima/imago/enroll"
	"github.com/imago-ima/imago/internal/imahost"
	"github.com/imago-ima/imago/internal/softtpm"
	"github.com/imago-ima/imago/verifier/client"
)

// softNode is an emulated attester enrolled with a verifier.
func softNode(t *testing.T, ca *softtpm.CA, cl *client.Client, name string) *attester.Attester {
	t.Helper()
	a := softAdded(t, ca, cl, name)
	if err := a.Enroll(context.Background()); err != nil {
		t.Fatal(err)
	}
	return a
}

// softAdded is an emulated attester whose node (with its runtime policy)
// the verifier has, not yet enrolled.
func softAdded(t *testing.T, ca *softtpm.CA, cl *client.Client, name string) *attester.Attester {
	t.Helper()
	tp, err := softtpm.New(ca, name)
	if err != nil {
		t.Fatal(err)
	}
	h, err := imahost.NewBooted(tp)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cl.AddNode(ctx, &attest.NodeAdd{Node: name, RuntimePolicy: h.Policy(nil)}); err != nil {
		t.Fatal(err)
	}
	return &attester.Attester{TPM: tp, Client: cl, Node: name, List: h}
}

// TestStale: a node silent for three intervals is marked stale by the
// verifier; its next round passes again.
func TestStale(t *testing.T) {
	ca, _ := softtpm.NewCA("test")
	v := startVerifier(t, "sqlite://"+filepath.Join(t.TempDir(), "v.db"), enroll.NewRoots([]*x509.Certificate{ca.Cert}),
		func(c *Config) { c.Interval = 100 * time.Millisecond })
	cl, _ := client.New(v.URL, client.Options{CA: v.CA})
	a := softNode(t, ca, cl, "quiet")
	ctx := context.Background()
	if res, err := a.Round(ctx); err != nil || res.State != attest.StatePass {
		t.Fatalf("%+v %v", res, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := cl.Node(ctx, "quiet", 0)
		if err != nil {
			t.Fatal(err)
		}
		if n.State == attest.StateStale {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not stale after %v: %+v", 10*time.Second, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if res, err := a.Round(ctx); err != nil || res.State != attest.StatePass {
		t.Fatalf("after stale: %+v %v", res, err)
	}
}

// TestLimitsAndOperators: bodies over an endpoint's limit are refused with
// 413; operator endpoints want the token when one is configured.
func TestLimitsAndOperators(t *testing.T) {
	ca, _ := softtpm.NewCA("test")
	const token = "an operator token of some length"
	v := startVerifier(t, "sqlite://"+filepath.Join(t.TempDir(), "v.db"), enroll.NewRoots([]*x509.Certificate{ca.Cert}),
		func(c *Config) { c.AdminToken = token })
	tr, _ := client.TLSTransport(v.CA, 2)
	hc := &http.Client{Transport: tr}
	post := func(path string, body []byte, auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, v.URL+path, bytes.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		rsp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer rsp.Body.Close()
		b, _ := io.ReadAll(rsp.Body)
		return rsp.StatusCode, string(b)
	}
	if code, body := post("/v1/nodes/n1/challenge", bytes.Repeat([]byte(" "), attest.MaxChallengeRequestSize+1), ""); code != 413 || !strings.Contains(body, "request.too_large") {
		t.Fatalf("oversized challenge request: %d %s", code, body)
	}
	if code, body := post("/v1/nodes/n1/evidence", []byte("{"), ""); code != 400 {
		t.Fatalf("malformed evidence: %d %s", code, body)
	}
	add := []byte(`{"node":"n1","runtime_policy":"eyJtZXRhIjp7InZlcnNpb24iOjF9fQ=="}`) // {"meta":{"version":1}}
	if code, _ := post("/v1/nodes", add, ""); code != 401 {
		t.Fatalf("node add without the token: %d", code)
	}
	if code, _ := post("/v1/nodes", add, "wrong"); code != 401 {
		t.Fatalf("node add with a wrong token: %d", code)
	}
	if code, body := post("/v1/nodes", add, token); code != 201 {
		t.Fatalf("node add with the token: %d %s", code, body)
	}
	if code, body := post("/v1/nodes", []byte(`{"node":"n2","runtime_policy":"e30="}`), token); code != 400 || !strings.Contains(body, "policy.invalid") {
		t.Fatalf("node add with a policy that is not one: %d %s", code, body)
	}
	if code, body := post("/v1/nodes/n1/challenge", []byte(`{"banks":["sha256"]}`), ""); code != 409 || !strings.Contains(body, "enroll.required") {
		t.Fatalf("challenge before enrollment: %d %s", code, body)
	}
	rsp, err := hc.Get(v.URL + "/openapi.yaml")
	if err != nil || rsp.StatusCode != 200 {
		t.Fatalf("openapi: %v %v", rsp, err)
	}
	b, _ := io.ReadAll(rsp.Body)
	rsp.Body.Close()
	if !bytes.Equal(b, OpenAPI()) {
		t.Fatal("served OpenAPI differs")
	}
}

// TestDyingComponent: when the listener fails under it, Run returns an
// error (the command exits 1 and the service manager restarts it).
func TestDyingComponent(t *testing.T) {
	v := startVerifier(t, "sqlite://"+filepath.Join(t.TempDir(), "v.db"), nil, nil)
	v.srv.cfg.Listener.Close()
	select {
	case err := <-v.done:
		if err == nil {
			t.Fatal("Run returned nil after its listener died")
		}
		v.done <- err // for stop
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its listener died")
	}
	v.stop()
}

// TestOpenAPIPaths: every route the handler serves is in openapi.yaml.
func TestOpenAPIPaths(t *testing.T) {
	for _, p := range []string{"/v1/nodes:", "/v1/nodes/{node}:", "/v1/nodes/{node}/enroll:", "/v1/nodes/{node}/activate:",
		"/v1/nodes/{node}/challenge:", "/v1/nodes/{node}/evidence:", "/v1/nodes/{node}/check:", "/v1/ear/keys:", "/openapi.yaml:", "/healthz:"} {
		if !bytes.Contains(OpenAPI(), []byte("\n  "+p+"\n")) {
			t.Errorf("openapi.yaml lacks %s", p)
		}
	}
}

// TestEKWithoutCertificate: a TPM without an EK certificate enrols only
// for a node added with the opt-in.
func TestEKWithoutCertificate(t *testing.T) {
	ca, _ := softtpm.NewCA("test")
	v := startVerifier(t, "sqlite://"+filepath.Join(t.TempDir(), "v.db"), enroll.NewRoots([]*x509.Certificate{ca.Cert}), nil)
	cl, _ := client.New(v.URL, client.Options{CA: v.CA})
	ctx := context.Background()
	tp, _ := softtpm.New(nil, "") // no EK certificate
	h, _ := imahost.NewBooted(tp)
	a := &attester.Attester{TPM: tp, Client: cl, Node: "bare", List: h}
	if _, err := cl.AddNode(ctx, &attest.NodeAdd{Node: "bare", RuntimePolicy: h.Policy(nil)}); err != nil {
		t.Fatal(err)
	}
	err := a.Enroll(ctx)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 403 || ce.ID != "enroll.no_ek_certificate" {
		t.Fatalf("enrollment without a certificate and without the opt-in: %v", err)
	}
	if _, err := cl.AddNode(ctx, &attest.NodeAdd{Node: "bare", RuntimePolicy: h.Policy(nil), AllowEKWithoutCert: true}); err != nil {
		t.Fatal(err)
	}
	if err := a.Enroll(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := a.Round(ctx); err != nil || res.Verdict != attest.VerdictPass {
		t.Fatalf("%+v %v", res, err)
	}
}

// TestChallengeExpires: evidence for an expired challenge is refused and
// changes nothing.
func TestChallengeExpires(t *testing.T) {
	ca, _ := softtpm.NewCA("test")
	v := startVerifier(t, "sqlite://"+filepath.Join(t.TempDir(), "v.db"), enroll.NewRoots([]*x509.Certificate{ca.Cert}),
		func(c *Config) { c.ChallengeTTL = 50 * time.Millisecond })
	cl, _ := client.New(v.URL, client.Options{CA: v.CA})
	a := softNode(t, ca, cl, "slow")
	ctx := context.Background()
	ch, err := cl.Challenge(ctx, "slow", &attest.ChallengeRequest{Banks: []string{"sha1", "sha256"}})
	if err != nil {
		t.Fatal(err)
	}
	q, err := a.TPM.Quote(ch.Nonce, ch.Selection)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := a.List.ReadFrom(ch.Offset)
	time.Sleep(100 * time.Millisecond)
	_, err = cl.Evidence(ctx, "slow", &attest.Evidence{Token: ch.Token, Quote: attest.Quote{Attest: q.Attest, Signature: q.Signature},
		PCRs: attest.PCRValues(q.PCRs), Offset: ch.Offset, List: list})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 410 || ce.ID != "challenge.expired" {
		t.Fatalf("evidence after expiry: %v", err)
	}
	if n, _ := cl.Node(ctx, "slow", 0); n.State != attest.StateEnrolling {
		t.Fatalf("state after an expired challenge: %s", n.State)
	}
}
