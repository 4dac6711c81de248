package digsig

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/internal/testfixture"
)

// signedCapture returns a file of the real-kernel capture with signed
// entries (testdata/realkernel/p-ima-sig-signed at the module root).
func signedCapture(t testing.TB, name string) string {
	t.Helper()
	return testfixture.Path(t, "realkernel/p-ima-sig-signed/"+name)
}

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
		t.Fatal(err)
	}
	return b
}

// openssl runs the openssl tool in dir (testenv.Tool when it is absent).
func openssl(t testing.TB, dir string, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(testenv.Tool(t, "openssl"), args...)
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
