package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/attester"
	rk "github.com/imago-ima/imago/internal/realkernel"
	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/tpm"
	"github.com/imago-ima/imago/tpm/tpmtest"
	"github.com/imago-ima/imago/verifier/client"
)

// TestAttestRealKernel: Debian's 6.1 kernel boots under qemu with a swtpm
// that has a real EK certificate chain (SeaBIOS measures PCR 0-7 into it;
// the kernel's IMA measures under ima_policy=tcb); in the guest, the static
// imago runs `attest --offline` with a nonce from the kernel command line;
// on the host the evidence is checked with `imago verifier check` against
// the node enrolled (credential activation) with the same TPM state, and a
// runtime policy made from the guest's measured files: pass; a second boot
// with one file changed: fail naming it.
func TestAttestRealKernel(t *testing.T) {
	testenv.SkipShort(t)
	rk.Require(t, true)
	ctx := context.Background()
	dir := t.TempDir()

	// The guest's TPM: a swtpm state with EK certificates from a private CA.
	ca := tpmtest.NewLocalCA(t)
	sw := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}, EK: ca})

	cert, key := writeTLS(t, dir)
	addr := freeAddr(t)
	url := "https://" + addr
	startVerifierCLI(t, url, cert, "--listen", addr, "--db", "sqlite://"+filepath.Join(dir, "v.db"),
		"--tls-cert", cert, "--tls-key", key, "--ek-roots", ca.RootsDir(t), "--log-format", "text", "--log-level", "warn")
	srv := []string{"--server", url, "--ca", cert}
	placeholder := filepath.Join(dir, "empty-policy.json")
	os.WriteFile(placeholder, []byte(`{"meta": {"version": 1}, "digests": {}}`), 0o644)
	if r := runCLI(t, nil, append([]string{"verifier", "node", "add", "guest", "--runtime-policy", placeholder}, srv...)...); r.code != 0 {
		t.Fatalf("node add: %d %s", r.code, r.stderr)
	}

	// Enrol the TPM from the host: the guest's AK is a primary key of the
	// same endorsement seed, so the guest's quotes are signed by it.
	sw.Start()
	func() {
		tp, err := tpm.Open(sw.URI)
		if err != nil {
			t.Fatal(err)
		}
		defer tp.Close()
		dev := attester.NewDevice(tp)
		defer dev.Close()
		caPEM, _ := os.ReadFile(cert)
		cl, err := client.New(url, client.Options{CA: caPEM})
		if err != nil {
			t.Fatal(err)
		}
		if err := (&attester.Attester{TPM: dev, Client: cl, Node: "guest"}).Enroll(ctx); err != nil {
			t.Fatal(err)
		}
	}()
	sw.Stop()

	imago := rk.BuildImago(t)
	boot := func(name, nonce, conf string) (evidence, list string) {
		t.Helper()
		out := filepath.Join(dir, name)
		os.MkdirAll(out, 0o755)
		res, err := rk.Boot(ctx, rk.Config{
			Dir:     out,
			Cmdline: []string{"ima_policy=tcb", "ima_template=ima-ng", "ima_hash=sha256", "imago_nonce=" + nonce},
			Imago:   imago,
			TPM:     &rk.HostTPM{StateDir: sw.Dir},
			Files:   []rk.File{{Path: "/etc/imago-app.conf", Data: []byte(conf), Mode: 0o644}},
			Script: `cat /etc/imago-app.conf >/dev/null
imago attest --offline --nonce "$imago_nonce" --tpm /dev/tpmrm0 -o "$OUT/evidence.json" || exit 1
cat /sys/kernel/security/ima/ascii_runtime_measurements > "$OUT/ascii_runtime_measurements"`,
			Timeout: 10 * time.Minute,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != 0 {
			t.Fatalf("%s: the guest script exited %d\n%s\n%s", name, res.Status, res.Out["run.log"], res.Out["dmesg.txt"])
		}
		evidence, list = filepath.Join(dir, name+"-evidence.json"), filepath.Join(dir, name+"-ascii")
		os.WriteFile(evidence, res.Out["evidence.json"], 0o644)
		os.WriteFile(list, res.Out["ascii_runtime_measurements"], 0o644)
		return evidence, list
	}

	nonce := hex.EncodeToString([]byte("real kernel nonce 1"))
	ev1, list1 := boot("boot1", nonce, "setting = 1\n")
	var ev attest.Evidence
	if err := json.Unmarshal([]byte(mustRead(t, ev1)), &ev); err != nil || len(ev.EventLog) == 0 || len(ev.List) == 0 {
		t.Fatalf("the guest's evidence lacks the firmware event log or the list (%v)", err)
	}
	if !strings.Contains(mustRead(t, list1), "/etc/imago-app.conf") {
		t.Fatalf("the guest's list does not measure the file:\n%s", mustRead(t, list1))
	}
	// The runtime policy, made from the guest's measured files.
	policy := filepath.Join(dir, "policy.json")
	if r := runCLI(t, nil, "runtime-policy", "create", "--from-log", list1, "-o", policy); r.code != 0 {
		t.Fatalf("runtime-policy create: %d %s", r.code, r.stderr)
	}
	if r := runCLI(t, nil, append([]string{"verifier", "node", "add", "guest", "--runtime-policy", policy}, srv...)...); r.code != 0 {
		t.Fatalf("node add: %d %s", r.code, r.stderr)
	}
	r := runCLI(t, nil, append([]string{"verifier", "check", ev1, "--node", "guest", "--nonce", nonce}, srv...)...)
	if r.code != 0 {
		t.Fatalf("verifier check of the guest's evidence: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("boot 1: %s", strings.TrimSpace(r.stdout))

	// Another boot with one file changed: it fails, naming the file.
	nonce2 := hex.EncodeToString([]byte("real kernel nonce 2"))
	ev2, _ := boot("boot2", nonce2, "setting = 2\n")
	r = runCLI(t, nil, append([]string{"verifier", "check", ev2, "--node", "guest", "--nonce", nonce2}, srv...)...)
	if r.code != 1 || !strings.Contains(r.stdout, "/etc/imago-app.conf") || !strings.Contains(r.stdout, "runtime_policy_hash") {
		t.Fatalf("verifier check with a changed file: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("boot 2: %s", strings.TrimSpace(r.stdout))
	// The first boot's evidence does not pass for another nonce.
	if r := runCLI(t, nil, append([]string{"verifier", "check", ev1, "--node", "guest", "--nonce", nonce2}, srv...)...); r.code != 1 {
		t.Fatalf("old evidence for a new nonce: %d", r.code)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
