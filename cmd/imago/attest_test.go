package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/internal/testcert"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

// writeTLS writes a self-signed certificate for 127.0.0.1 and its key.
func writeTLS(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	return testcert.New(t).Write(t, dir)
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startVerifierCLI runs `imago verifier serve args...` until the test
// ends, waiting until it answers.
func startVerifierCLI(t *testing.T, url, ca string, args ...string) {
	t.Helper()
	startCLI(t, append([]string{"verifier", "serve"}, args...), []string{"verifier", "node", "list", "--server", url, "--ca", ca})
}

// policyFromList writes a Keylime runtime policy allowing every entry of
// an imago agent's list.
func policyFromList(t *testing.T, runtime, out string) {
	t.Helper()
	digests := map[string][]string{}
	for _, e := range mustEntries(t, filepath.Join(runtime, "binary_runtime_measurements")) {
		d, err := e.FileDigest()
		if err != nil {
			t.Fatal(err)
		}
		n, _ := e.Name()
		digests[n] = append(digests[n], hex.EncodeToString(d.Sum))
	}
	b, _ := json.Marshal(map[string]any{"meta": map[string]int{"version": 1}, "release": 0, "digests": digests,
		"excludes": []string{}, "keyrings": map[string]any{}, "ima": map[string]any{"ignored_keyrings": []string{}, "log_hash_alg": "sha1", "dm_policy": nil},
		"ima-buf": map[string]any{}, "verification-keys": ""})
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAttestCLI: imago verifier serve, verifier node add/list/show/remove,
// attest --once and --offline, and verifier check, as a user runs them,
// against a swtpm with a real EK certificate chain and an imago agent's
// list (its own PCR).
func TestAttestCLI(t *testing.T) {
	ca := tpmtest.NewLocalCA(t)
	sw := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}, EK: ca})
	sw.Start()
	dir := t.TempDir()
	agentArgs, runtime, socket := agentDirs(t)
	startAgentCLI(t, socket, append(agentArgs, "--tpm", sw.URI, "--pcr", "11")...)
	files := tempFiles(t, 3)
	for _, f := range files {
		if r := runCLI(t, nil, "measure", "--socket", socket, f); r.code != 0 {
			t.Fatalf("measure: %d %s", r.code, r.stderr)
		}
	}
	policy := filepath.Join(dir, "policy.json")
	policyFromList(t, runtime, policy)

	cert, key := writeTLS(t, dir)
	addr := freeAddr(t)
	url := "https://" + addr
	startVerifierCLI(t, url, cert, "--listen", addr, "--db", "sqlite://"+filepath.Join(dir, "v.db"),
		"--tls-cert", cert, "--tls-key", key, "--ek-roots", ca.RootsDir(t), "--log-format", "text", "--log-level", "warn")
	srv := []string{"--server", url, "--ca", cert}

	if r := runCLI(t, nil, append([]string{"verifier", "node", "add", "n1", "--runtime-policy", policy, "--pcr", "11"}, srv...)...); r.code != 0 {
		t.Fatalf("node add: %d %s", r.code, r.stderr)
	}
	attestArgs := []string{"attest", "--once", "--verifier", url, "--ca", cert, "--node", "n1", "--tpm", sw.URI,
		"--list", runtime, "--eventlog", filepath.Join(dir, "no-eventlog")}
	r := runCLI(t, nil, attestArgs...)
	if r.code != 0 || !strings.Contains(r.stdout, "n1: pass") {
		t.Fatalf("attest --once: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// --interval attests until stopped.
	before := nodeRound(t, srv, "n1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		var out, errb strings.Builder
		args := append([]string{}, attestArgs...)
		args[1] = "--interval=100ms"
		done <- run(ctx, args, strings.NewReader(""), &out, &errb)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for nodeRound(t, srv, "n1") < before+3 {
		if time.Now().After(deadline) {
			t.Fatal("attest --interval made no rounds")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("attest --interval exited %d after SIGTERM", code)
	}

	// Offline evidence of the passing host verifies.
	ev := filepath.Join(dir, "evidence.json")
	if r := runCLI(t, nil, "attest", "--offline", "--nonce", "00112233", "-o", ev, "--tpm", sw.URI, "--list", runtime,
		"--eventlog", filepath.Join(dir, "no-eventlog")); r.code != 0 {
		t.Fatalf("attest --offline: %d %s", r.code, r.stderr)
	}
	check := append([]string{"verifier", "check", ev, "--node", "n1", "--nonce", "00112233"}, srv...)
	if r := runCLI(t, nil, check...); r.code != 0 {
		t.Fatalf("verifier check: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, nil, append([]string{"verifier", "check", ev, "--node", "n1", "--nonce", "99"}, srv...)...); r.code != 1 {
		t.Fatalf("verifier check with another nonce: %d, want 1", r.code)
	}

	// A file outside the policy: attest exits 1 naming it; node show says so.
	evil := filepath.Join(dir, "evil")
	os.WriteFile(evil, []byte("evil"), 0o755)
	runCLI(t, nil, "measure", "--socket", socket, evil)
	r = runCLI(t, nil, attestArgs...)
	if r.code != 1 || !strings.Contains(r.stdout, evil) || !strings.Contains(r.stdout, "not_in_allowlist") {
		t.Fatalf("attest after a file outside the policy: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, nil, append([]string{"verifier", "node", "show", "n1", "--json"}, srv...)...)
	var v attest.NodeView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.State != attest.StateFail || len(v.Failures) != 1 || v.Failures[0].Path != evil {
		t.Fatalf("node show --json: %v\n%s", err, r.stdout)
	}
	r = runCLI(t, nil, append([]string{"verifier", "node", "list", "--json"}, srv...)...)
	if !strings.Contains(r.stdout, `"state":"fail"`) && !strings.Contains(r.stdout, `"state": "fail"`) {
		t.Fatalf("node list --json: %s", r.stdout)
	}
	if r := runCLI(t, nil, "attest", "--offline", "--nonce", "aa", "-o", ev, "--tpm", sw.URI, "--list", runtime,
		"--eventlog", filepath.Join(dir, "no-eventlog")); r.code != 0 {
		t.Fatalf("attest --offline: %d %s", r.code, r.stderr)
	}
	r = runCLI(t, nil, append([]string{"verifier", "check", ev, "--node", "n1"}, srv...)...)
	if r.code != 1 || !strings.Contains(r.stdout, evil) {
		t.Fatalf("verifier check with the file outside the policy: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// No verdict: an unknown node, an unreachable verifier.
	if r := runCLI(t, nil, append(attestArgs[:len(attestArgs):len(attestArgs)], "--node", "nobody")...); r.code != 2 {
		t.Fatalf("attest as an unknown node: %d, want 2\n%s", r.code, r.stderr)
	}
	down := append([]string{}, attestArgs...)
	down[3] = "https://" + freeAddr(t)
	if r := runCLI(t, nil, down...); r.code != 2 {
		t.Fatalf("attest to an unreachable verifier: %d, want 2\n%s", r.code, r.stderr)
	}
	if r := runCLI(t, nil, append([]string{"verifier", "node", "remove", "n1"}, srv...)...); r.code != 0 {
		t.Fatalf("node remove: %d %s", r.code, r.stderr)
	}
	if r := runCLI(t, nil, append([]string{"verifier", "node", "show", "n1"}, srv...)...); r.code != 2 {
		t.Fatalf("node show of a removed node: %d", r.code)
	}
	// Usage errors.
	if r := runCLI(t, nil, "attest", "--node", "x"); r.code != 2 {
		t.Fatalf("attest without a mode: %d", r.code)
	}
	if r := runCLI(t, nil, "verifier", "serve", "--listen", freeAddr(t)); r.code != 2 || !strings.Contains(r.stderr, "--tls-cert") {
		t.Fatalf("serve without TLS: %d %s", r.code, r.stderr)
	}
}

func nodeRound(t *testing.T, srv []string, node string) uint64 {
	t.Helper()
	r := runCLI(t, nil, append([]string{"verifier", "node", "show", node, "--json"}, srv...)...)
	var v attest.NodeView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("node show: %v\n%s%s", err, r.stdout, r.stderr)
	}
	return v.Round
}
