package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/internal/emuhost"
	"github.com/imago-ima/imago/internal/softtpm"
	"github.com/imago-ima/imago/verifier/client"
)

// TestNodeListMatchesAPI: `imago verifier node list --json` and `node show
// --json` print what the API answers (GET /v1/nodes, /v1/nodes/{node}),
// for a fleet of emulated hosts in every state, so scripts can use either;
// and /metrics answers in the Prometheus text format.
func TestNodeListMatchesAPI(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeTLS(t, dir)
	ca, err := softtpm.NewCA("imago cli test EK CA")
	if err != nil {
		t.Fatal(err)
	}
	cpem, _, _ := ca.PEM()
	roots := filepath.Join(dir, "roots")
	os.Mkdir(roots, 0o755)
	os.WriteFile(filepath.Join(roots, "ca.pem"), cpem, 0o644)
	addr := freeAddr(t)
	url := "https://" + addr
	startVerifierCLI(t, url, cert, "--listen", addr, "--db", "sqlite://"+filepath.Join(dir, "v.db"),
		"--tls-cert", cert, "--tls-key", key, "--ek-roots", roots, "--log-format", "text", "--log-level", "error")
	caPEM, _ := os.ReadFile(cert)
	cl, err := client.New(url, client.Options{CA: caPEM})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := emuhost.Policy(ca)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 4 {
		h, err := emuhost.New(ca, fmt.Sprintf("cli-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.AddNode(ctx, &attest.NodeAdd{Node: h.Name, RuntimePolicy: policy}); err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			continue // stays enrolling
		}
		h.Measure(3)
		if i == 2 {
			h.IMA.Measure("/opt/unknown", []byte("x"))
		}
		a := h.Attester(cl)
		if err := a.Enroll(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Round(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(path string) (any, []byte) {
		rsp, err := hc.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer rsp.Body.Close()
		b, _ := io.ReadAll(rsp.Body)
		var v any
		if rsp.Header.Get("Content-Type") == "application/json" {
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
		}
		return v, b
	}
	cli := func(args ...string) any {
		r := runCLI(t, nil, append(args, "--server", url, "--ca", cert)...)
		if r.code != 0 {
			t.Fatalf("imago %v: %d %s", args, r.code, r.stderr)
		}
		var v any
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Fatalf("imago %v: %v\n%s", args, err, r.stdout)
		}
		return v
	}
	api, _ := get("/v1/nodes")
	if got := cli("verifier", "node", "list", "--json"); !reflect.DeepEqual(got, api) {
		t.Fatalf("node list --json:\n%v\nGET /v1/nodes:\n%v", got, api)
	}
	states := map[string]string{}
	for _, n := range api.(map[string]any)["nodes"].([]any) {
		m := n.(map[string]any)
		states[m["node"].(string)] = m["state"].(string)
	}
	if want := map[string]string{"cli-0": "pass", "cli-1": "pass", "cli-2": "fail", "cli-3": "enrolling"}; !reflect.DeepEqual(states, want) {
		t.Fatalf("states %v, want %v", states, want)
	}
	show, _ := get("/v1/nodes/cli-2?history=5")
	if got := cli("verifier", "node", "show", "cli-2", "--json", "--history", "5"); !reflect.DeepEqual(got, show) {
		t.Fatalf("node show --json:\n%v\nGET /v1/nodes/cli-2:\n%v", got, show)
	}
	if _, b := get("/metrics"); !slices.Contains(strings.Split(string(b), "\n"), `imago_verifier_nodes{state="fail"} 1`) {
		t.Fatalf("/metrics:\n%s", b)
	}
}
