package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-ima/imago/internal/testenv"
	"golang.org/x/sys/unix"
)

// Interop with evmctl 1.4 (ima-evm-utils) in both directions, on files in
// a directory whose filesystem keeps security.* xattrs. The oracles are
// evmctl (ima_hash, ima_sign, ima_verify), getfattr and openssl.

// needTools reports a missing tool through testenv.Tool.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		testenv.Tool(t, tool)
	}
}

// imaDir returns a directory where security.ima can be written: a
// t.TempDir() if its filesystem supports security.* xattrs (setfattr
// probe), else a tmpfs mounted on it for the test.
func imaDir(t *testing.T) string {
	t.Helper()
	needTools(t, "setfattr", "getfattr")
	testenv.Root(t, "writing security.ima (CAP_SYS_ADMIN)")
	dir := t.TempDir()
	probe := func() error {
		p := filepath.Join(dir, ".probe")
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			return err
		}
		defer os.Remove(p)
		out, err := exec.Command("setfattr", "-n", "security.ima", "-v", "0x0404", p).CombinedOutput()
		if err != nil {
			return &exec.ExitError{Stderr: out}
		}
		return nil
	}
	// IMAGO_TEST_TMPFS=1 takes the tmpfs path even where it is not needed.
	if err := probe(); err != nil || os.Getenv("IMAGO_TEST_TMPFS") != "" {
		if merr := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64m,mode=0700"); merr != nil {
			testenv.Missing(t, "tmpfs", "%s has no security.* xattrs (%v) and a tmpfs cannot be mounted: %v", dir, err, merr)
		}
		t.Cleanup(func() { unix.Unmount(dir, 0) })
		if err := probe(); err != nil {
			testenv.Env(t, testenv.Kernel, "no security.* xattrs even on tmpfs: %v", err)
		}
	}
	return dir
}

func tool(t *testing.T, dir, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustTool(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	out, err := tool(t, dir, name, args...)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
}

// getIMA returns a file's security.ima as getfattr reads it.
func getIMA(t *testing.T, path string) []byte {
	t.Helper()
	out, err := exec.Command("getfattr", "--only-values", "-n", "security.ima", path).Output()
	if err != nil {
		t.Fatalf("getfattr %s: %v", path, err)
	}
	return out
}

func writeRandom(t *testing.T, path string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func appendByte(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{'!'})
	f.Close()
}

// imago hash writes the same bytes as evmctl ima_hash for the same file, and
// imago appraise passes what evmctl ima_hash wrote and fails it once the
// file changes.
func TestHashInteropEvmctl(t *testing.T) {
	needTools(t, "evmctl")
	dir := imaDir(t)
	for _, alg := range []string{"sha1", "sha256", "sha384", "sha512"} {
		t.Run(alg, func(t *testing.T) {
			a, b := filepath.Join(dir, alg+"-evmctl"), filepath.Join(dir, alg+"-imago")
			data := writeRandom(t, a, 3<<20+17)
			os.WriteFile(b, data, 0o644)
			mustTool(t, dir, "evmctl", "ima_hash", "-a", alg, a)
			if r := runCLI(t, nil, "hash", "--hash", alg, b); r.code != 0 {
				t.Fatalf("imago hash: %d %s", r.code, r.stderr)
			}
			want, got := getIMA(t, a), getIMA(t, b)
			if !bytes.Equal(got, want) {
				t.Fatalf("imago hash wrote %x, evmctl ima_hash %x", got, want)
			}
			for _, p := range []string{a, b} {
				if r := runCLI(t, nil, "appraise", p); r.code != 0 || !strings.HasPrefix(r.stdout, "pass ") {
					t.Errorf("appraise %s: %d %s%s", p, r.code, r.stdout, r.stderr)
				}
			}
			// Signatures required: a hash fails.
			if r := runCLI(t, nil, "appraise", "--require", "imasig", a); r.code != 1 || !strings.Contains(r.stdout, "IMA-signature-required") {
				t.Errorf("appraise --require imasig: %d %s", r.code, r.stdout)
			}
			appendByte(t, a)
			if r := runCLI(t, nil, "appraise", a); r.code != 1 || !strings.Contains(r.stdout, "invalid-hash") {
				t.Errorf("appraise of a changed file: %d %s", r.code, r.stdout)
			}
		})
	}
	// No security.ima: nolabel.
	p := filepath.Join(dir, "unlabelled")
	writeRandom(t, p, 10)
	if r := runCLI(t, nil, "appraise", p); r.code != 1 || !strings.HasPrefix(r.stdout, "nolabel ") {
		t.Errorf("appraise unlabelled: %d %s", r.code, r.stdout)
	}
}

// keySet makes keys in the formats sign accepts, each with a DER
// certificate made with subjectKeyIdentifier=hash.
func keySet(t *testing.T, dir string) []string {
	t.Helper()
	needTools(t, "openssl")
	mustTool(t, dir, "openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa-pkcs8.pem")
	mustTool(t, dir, "openssl", "rsa", "-in", "rsa-pkcs8.pem", "-traditional", "-out", "rsa-pkcs1.pem")
	mustTool(t, dir, "openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ec-sec1.pem")
	mustTool(t, dir, "openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", "ec384-pkcs8.pem")
	keys := []string{"rsa-pkcs8", "rsa-pkcs1", "ec-sec1", "ec384-pkcs8"}
	os.Mkdir(filepath.Join(dir, "keyring"), 0o700)
	for _, k := range keys {
		mustTool(t, dir, "openssl", "req", "-new", "-x509", "-key", k+".pem", "-out", k+".der", "-outform", "der",
			"-days", "30", "-subj", "/CN=imago "+k, "-addext", "subjectKeyIdentifier=hash")
		data, _ := os.ReadFile(filepath.Join(dir, k+".der"))
		os.WriteFile(filepath.Join(dir, "keyring", k+".der"), data, 0o644)
	}
	return keys
}

// evmctl ima_sign -> imago appraise, and imago sign -> evmctl ima_verify,
// for RSA-2048 (PKCS#8 and PKCS#1) and ECDSA (P-256 SEC1, P-384 PKCS#8)
// keys and several hash algorithms; a changed file fails in both.
func TestSignInteropEvmctl(t *testing.T) {
	needTools(t, "evmctl")
	dir := imaDir(t)
	keys := keySet(t, dir)
	keyring := filepath.Join(dir, "keyring")
	for _, k := range keys {
		for _, alg := range []string{"sha256", "sha1", "sha512"} {
			t.Run(k+"/"+alg, func(t *testing.T) {
				key, cert := filepath.Join(dir, k+".pem"), filepath.Join(dir, k+".der")
				a := filepath.Join(dir, k+"-"+alg+"-evmctl")
				b := filepath.Join(dir, k+"-"+alg+"-imago")
				c := filepath.Join(dir, k+"-"+alg+"-imago-nocert")
				data := writeRandom(t, a, 1<<20+3)
				os.WriteFile(b, data, 0o644)
				os.WriteFile(c, data, 0o644)

				// evmctl -> imago.
				mustTool(t, dir, "evmctl", "ima_sign", "-a", alg, "--key", key, a)
				for _, kr := range []string{cert, keyring} {
					if r := runCLI(t, nil, "appraise", "--keyring", kr, "--require", "imasig", a); r.code != 0 {
						t.Errorf("appraise (keyring %s) of evmctl's signature: %d %s%s", filepath.Base(kr), r.code, r.stdout, r.stderr)
					}
				}

				// imago -> evmctl, keyid from the certificate and from the key.
				if r := runCLI(t, nil, "sign", "--key", key, "--cert", cert, "--hash", alg, b); r.code != 0 {
					t.Fatalf("imago sign: %d %s", r.code, r.stderr)
				}
				if r := runCLI(t, nil, "sign", "--key", key, "--hash", alg, c); r.code != 0 {
					t.Fatalf("imago sign (no cert): %d %s", r.code, r.stderr)
				}
				for _, p := range []string{b, c} {
					out := mustTool(t, dir, "evmctl", "ima_verify", "--key", cert, p)
					if !strings.Contains(out, "verification is OK") {
						t.Errorf("evmctl ima_verify %s: %s", filepath.Base(p), out)
					}
				}
				// Same header as evmctl's: type, version, algo, keyid.
				va, vb := getIMA(t, a), getIMA(t, b)
				if vc := getIMA(t, c); !bytes.Equal(va[:7], vb[:7]) || !bytes.Equal(va[:7], vc[:7]) {
					t.Errorf("headers: evmctl %x, imago %x, imago without --cert %x", va[:7], vb[:7], vc[:7])
				}
				// RSA PKCS#1 v1.5 is deterministic: the very same bytes.
				if strings.HasPrefix(k, "rsa") && !bytes.Equal(va, vb) {
					t.Errorf("RSA signature differs from evmctl's:\n%x\n%x", va, vb)
				}

				// A changed file fails in both.
				for _, p := range []string{a, b} {
					appendByte(t, p)
					if out, err := tool(t, dir, "evmctl", "ima_verify", "--key", cert, p); err == nil {
						t.Errorf("evmctl ima_verify passed a changed file: %s", out)
					}
					if r := runCLI(t, nil, "appraise", "--keyring", cert, p); r.code != 1 || !strings.Contains(r.stdout, "invalid-signature") {
						t.Errorf("appraise of a changed file: %d %s", r.code, r.stdout)
					}
				}
			})
		}
	}
	t.Run("errors", func(t *testing.T) {
		p := filepath.Join(dir, "errors")
		writeRandom(t, p, 10)
		if r := runCLI(t, nil, "sign", "--key", filepath.Join(dir, "ec-sec1.pem"), "--cert", filepath.Join(dir, "rsa-pkcs8.der"), p); r.code != 2 {
			t.Errorf("mismatched certificate: %d %s", r.code, r.stderr)
		}
		if r := runCLI(t, nil, "sign", p); r.code != 2 {
			t.Errorf("no --key: %d", r.code)
		}
		if r := runCLI(t, nil, "sign", "--key", filepath.Join(dir, "rsa-pkcs8.der"), p); r.code != 2 {
			t.Errorf("certificate as key: %d", r.code)
		}
		// A signature by a key outside the keyring: unknown key.
		mustTool(t, dir, "evmctl", "ima_sign", "--key", filepath.Join(dir, "rsa-pkcs8.pem"), p)
		if r := runCLI(t, nil, "appraise", "--keyring", filepath.Join(dir, "ec-sec1.der"), p); r.code != 1 || !strings.Contains(r.stdout, "unknown key") {
			t.Errorf("unknown key: %d %s", r.code, r.stdout)
		}
		if r := runCLI(t, nil, "appraise", "--keyring", filepath.Join(dir, "nonexistent"), p); r.code != 2 {
			t.Errorf("missing keyring: %d", r.code)
		}
	})
}
