package digsig

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/imago-ima/imago/ima"
)

// realkernel is the repository's real-kernel captures (testdata/README.md).
const realkernel = "../../testdata/realkernel"

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			t.Skipf("fixture not available: %v", err)
		}
		t.Fatal(err)
	}
	return b
}

// openssl runs the openssl tool in dir, skipping the test if it is absent.
func openssl(t testing.TB, dir string, stdin []byte, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, stderr.Bytes())
	}
	return out
}

// opensslKeys makes an RSA-2048 and a P-256 key with certificates
// (subjectKeyIdentifier=hash) in dir: rsa.pem, rsa.der, ec.pem, ec.der.
func opensslKeys(t testing.TB, dir string) {
	t.Helper()
	openssl(t, dir, nil, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa.pem")
	openssl(t, dir, nil, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ec.pem")
	for _, k := range []string{"rsa", "ec"} {
		openssl(t, dir, nil, "req", "-new", "-x509", "-key", k+".pem", "-out", k+".der", "-outform", "der",
			"-days", "30", "-subj", "/CN=imago test "+k, "-addext", "subjectKeyIdentifier=hash")
	}
}

func keyringFrom(t testing.TB, paths ...string) *Keyring {
	t.Helper()
	var kr Keyring
	for _, p := range paths {
		if _, err := kr.Add(readFile(t, p)); err != nil {
			t.Fatalf("%s: %v", filepath.Base(p), err)
		}
	}
	return &kr
}

func sha(t testing.TB, alg ima.HashAlg, data []byte) ima.Digest {
	t.Helper()
	h := alg.New()
	h.Write(data)
	return ima.Digest{Alg: alg, Sum: h.Sum(nil)}
}
