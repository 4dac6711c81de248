package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/imago-ima/imago/internal/testenv"
)

const captures = "../../testdata/realkernel"

// The CLI end to end on a real-kernel capture: a policy made from the list
// passes it with both banks; one changed digest fails that entry (exit 1)
// with a line naming it; bad inputs exit 2.
func TestVerifyCLI(t *testing.T) {
	dir := filepath.Join(captures, "b-ima-sig")
	tmp := t.TempDir()
	policy := filepath.Join(tmp, "policy.json")
	r := runCLI(t, nil, "runtime-policy", "create", "--from-log", filepath.Join(dir, "ascii_runtime_measurements"), "-o", policy)
	if r.code != 0 {
		t.Fatalf("create: %d %s", r.code, r.stderr)
	}
	args := []string{"verify", filepath.Join(dir, "binary_runtime_measurements"), "--runtime-policy", policy,
		"--pcrs", "sha1," + filepath.Join(dir, "pcrs-sha1.txt"), "--pcrs", "sha256," + filepath.Join(dir, "pcrs-sha256.txt"),
		"--eventlog", filepath.Join(dir, "binary_bios_measurements")}
	r = runCLI(t, nil, args...)
	if r.code != 0 || !strings.Contains(r.stdout, "PASS:") || !strings.Contains(r.stdout, "sha256 PCR-10: matched at entry 16 of 16") {
		t.Fatalf("verify: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// One changed digest.
	data, _ := os.ReadFile(policy)
	bad := bytes.Replace(data, []byte("3d9f2889d6782537624a4e1a10e68a2ddd53e0ee8bac02676f27308f42ec6bf6"), []byte(strings.Repeat("ab", 32)), 1)
	if bytes.Equal(bad, data) {
		t.Fatal("busybox's digest not in the policy")
	}
	os.WriteFile(policy, bad, 0o644)
	r = runCLI(t, nil, args...)
	if r.code != 1 || !strings.Contains(r.stdout, "entry 2 /bin/busybox: ima.validation.ima-ng.runtime_policy_hash expected "+strings.Repeat("ab", 32)) {
		t.Fatalf("changed digest: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, nil, append(args, "--json")...)
	var rep struct {
		Verdict  string `json:"verdict"`
		Entries  int    `json:"entries"`
		Failures []struct {
			Entry int    `json:"entry"`
			Path  string `json:"path"`
			ID    string `json:"id"`
		} `json:"failures"`
		PCRs []struct {
			Matched bool `json:"matched"`
		} `json:"pcrs"`
		BootAggregate struct {
			Verdict string `json:"verdict"`
		} `json:"boot_aggregate"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 1 {
		t.Fatalf("--json: %d %v\n%s", r.code, err, r.stdout)
	}
	if rep.Verdict != "fail" || rep.Entries != 16 || len(rep.Failures) != 1 || rep.Failures[0].Entry != 2 || rep.Failures[0].Path != "/bin/busybox" ||
		len(rep.PCRs) != 2 || !rep.PCRs[0].Matched || rep.BootAggregate.Verdict != "pass" {
		t.Errorf("--json: %+v", rep)
	}
	// Unreadable or unusable inputs: 2, never a pass.
	os.WriteFile(policy, []byte(`{"meta": {"version": 1}, "excludes": ["(?<=x)y"]}`), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"verify", filepath.Join(dir, "binary_runtime_measurements"), "--runtime-policy", policy}, "(?<=x)y"},
		{[]string{"verify", filepath.Join(dir, "binary_runtime_measurements"), "--runtime-policy", filepath.Join(tmp, "none.json")}, "none.json"},
		{[]string{"verify", filepath.Join(dir, "binary_runtime_measurements"), "--runtime-policy", "../../runtimepolicy/testdata/keylime/runtime-policy-test-signed.json"}, "--policy-key"},
		{[]string{"verify", filepath.Join(dir, "binary_runtime_measurements"), "--excludelist", policy}, "--allowlist"},
		{[]string{"verify", "/dev/null/x"}, "x"},
	} {
		r := runCLI(t, nil, tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

// A list from standard input, and a legacy allowlist.
func TestVerifyAllowlistStdin(t *testing.T) {
	dir := filepath.Join(captures, "b-ima-sig")
	list, _ := os.ReadFile(filepath.Join(dir, "ascii_runtime_measurements"))
	var al bytes.Buffer
	for _, line := range strings.Split(strings.TrimSpace(string(list)), "\n") {
		f := strings.Fields(line)
		al.WriteString(strings.SplitN(f[3], ":", 2)[1] + "  " + f[4] + "\n")
	}
	tmp := t.TempDir()
	alf := filepath.Join(tmp, "allowlist")
	os.WriteFile(alf, al.Bytes(), 0o644)
	r := runCLI(t, list, "verify", "-", "--allowlist", alf)
	if r.code != 0 {
		t.Fatalf("%d %s%s", r.code, r.stdout, r.stderr)
	}
	ex := filepath.Join(tmp, "excludes")
	os.WriteFile(ex, []byte("/usr/bin/\n"), 0o644)
	short := bytes.Join(bytes.Split(al.Bytes(), []byte("\n"))[:10], []byte("\n"))
	os.WriteFile(alf, short, 0o644)
	r = runCLI(t, list, "verify", "-", "--allowlist", alf, "--excludelist", ex)
	if r.code != 1 || !strings.Contains(r.stdout, "ima.validation.ima-ng.not_in_allowlist") || strings.Contains(r.stdout, "/usr/bin/") {
		t.Fatalf("%d %s%s", r.code, r.stdout, r.stderr)
	}
}

// keylime's policy tools, run from the unpacked Keylime source.
func keylimePython(t *testing.T) string {
	t.Helper()
	tarball := "../../../shared/tools/keylime-baseline/keylime-9b1f6e6a.tar.gz"
	if _, err := os.Stat(tarball); err != nil {
		testenv.Missing(t, "keylime-baseline", "%s not found", tarball)
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		testenv.Missing(t, "python3", "Debian's /usr/bin/python3 runs Keylime")
	}
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", tarball, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	if out, err := exec.Command("/usr/bin/python3", "-c", "import sys; sys.path.insert(0, sys.argv[1]); import keylime.cmd.keylime_policy, keylime.signing", dir).CombinedOutput(); err != nil {
		testenv.Missing(t, "keylime-python", "keylime does not import: %v %s", err, out)
	}
	return dir
}

func python(t *testing.T, src, code string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", append([]string{"-c", "import sys, logging; sys.path.insert(0, sys.argv[1]); logging.disable(logging.CRITICAL)\n" + code, src}, args...)...)
	out, err := cmd.Output()
	return string(out), err
}

// DSSE interop both ways: keylime-policy's verifier accepts imago's
// envelope, imago accepts Keylime's, and a tampered one fails both.
func TestRuntimePolicySignInterop(t *testing.T) {
	src := keylimePython(t)
	tmp := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(key)
	priv := filepath.Join(tmp, "key.pem")
	os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
	pder, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pub := filepath.Join(tmp, "pub.pem")
	os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}), 0o644)
	policy := "../../runtimepolicy/testdata/keylime-tests/create-static-data/test2/output1.json"
	env := filepath.Join(tmp, "signed.json")
	if r := runCLI(t, nil, "runtime-policy", "sign", "--key", priv, policy, "-o", env); r.code != 0 {
		t.Fatalf("sign: %s", r.stderr)
	}
	verifyPy := `
from keylime import signing
from keylime.ima import ima
env = open(sys.argv[2], "rb").read()
ok = signing.verify_dsse_envelope(env, open(sys.argv[3], "rb").read())
print("ok" if ok else "bad")
ima.verify_runtime_policy(env, open(sys.argv[3], "rb").read())
`
	out, err := python(t, src, verifyPy, env, pub)
	if err != nil || strings.TrimSpace(out) != "ok" {
		t.Fatalf("Keylime on imago's envelope: %q %v", out, err)
	}
	// Keylime signs, imago verifies.
	signPy := `
from keylime.policy import sign_runtime_policy
from keylime.dsse import ecdsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
k = load_pem_private_key(open(sys.argv[2], "rb").read(), None)
s = sign_runtime_policy._sign_policy(ecdsa.Signer(k), sys.argv[3])
open(sys.argv[4], "w").write(s)
`
	kenv := filepath.Join(tmp, "keylime-signed.json")
	if out, err := python(t, src, signPy, priv, policy, kenv); err != nil {
		t.Fatalf("Keylime sign: %v %s", err, out)
	}
	if r := runCLI(t, nil, "runtime-policy", "verify", "--key", pub, kenv); r.code != 0 || !strings.Contains(r.stdout, "signature verified") {
		t.Fatalf("imago on Keylime's envelope: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, nil, "verify", filepath.Join(captures, "b-ima-sig", "ascii_runtime_measurements"), "--runtime-policy", kenv, "--policy-key", pub); r.code != 1 {
		t.Errorf("verify with Keylime's envelope: %d %s", r.code, r.stderr) // another machine's list: fails, but loads
	}
	// Tampered: both refuse.
	var e map[string]any
	b, _ := os.ReadFile(kenv)
	json.Unmarshal(b, &e)
	e["payload"] = strings.Replace(e["payload"].(string), "eyJ", "eyA", 1)
	b, _ = json.Marshal(e)
	os.WriteFile(kenv, b, 0o644)
	if r := runCLI(t, nil, "runtime-policy", "verify", "--key", pub, kenv); r.code != 1 {
		t.Errorf("tampered: imago exit %d %s", r.code, r.stderr)
	}
	if out, _ := python(t, src, verifyPy, kenv, pub); strings.TrimSpace(strings.SplitN(out, "\n", 2)[0]) != "bad" {
		t.Errorf("tampered: Keylime %q", out)
	}
}

// create --from-dir gives what keylime-policy create runtime --rootfs
// gives on the same tree (timestamps aside).
func TestCreateFromDirMatchesKeylime(t *testing.T) {
	testenv.Root(t, "keylime-policy hashes only files owned by root")
	src := keylimePython(t)
	root := t.TempDir()
	files := map[string]string{
		"usr/bin/a": "a", "usr/bin/b c": "with a space", "usr/lib/x/libx.so.1": strings.Repeat("x", 300000),
		"etc/hosts": "127.0.0.1 localhost\n", "var/log/skipped": "var is skipped", "tmp/skipped": "tmp too",
		"opt/skipme/f": "skip-path", "opt/keep/f": "kept", "empty": "",
	}
	for p, c := range files {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(c), 0o644)
	}
	os.Symlink("/etc/passwd", filepath.Join(root, "usr/bin/link"))
	tmp := t.TempDir()
	mine := filepath.Join(tmp, "imago.json")
	if r := runCLI(t, nil, "runtime-policy", "create", "--from-dir", root, "--skip-path", filepath.Join(root, "opt/skipme"), "-o", mine); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	theirs := filepath.Join(tmp, "keylime.json")
	py := `
from keylime.cmd import keylime_policy
sys.argv = ["keylime-policy", "create", "runtime", "--rootfs", sys.argv[2], "--skip-path", sys.argv[3], "-o", sys.argv[4]]
keylime_policy.main()
`
	if out, err := python(t, src, py, root, filepath.Join(root, "opt/skipme"), theirs); err != nil {
		t.Fatalf("keylime-policy: %v %s", err, out)
	}
	var a, b map[string]any
	for f, m := range map[string]*map[string]any{mine: &a, theirs: &b} {
		data, _ := os.ReadFile(f)
		if err := json.Unmarshal(data, m); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		delete((*m)["meta"].(map[string]any), "timestamp")
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("imago:   %v\nkeylime: %v", a, b)
	}
	if d := a["digests"].(map[string]any); len(d) != 6 || d["/usr/bin/b_c"] == nil {
		t.Errorf("digests %v", d)
	}
}
