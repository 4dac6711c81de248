package tpmtest

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/imago-ima/imago/internal/testenv"
)

// LocalCA is a private swtpm-localca: a certificate authority in a temporary
// directory that swtpm_setup --create-ek-cert uses to issue EK (and
// platform) certificates, so tests get TPMs with real certificate chains
// without touching /etc/swtpm-localca.conf or /var/lib/swtpm-localca.
// swtpm_localca creates its root and issuer on first use.
//
// An emulator made with Options{EK: ca} has, as swtpm 0.7 manufactures it,
// an RSA-2048 EK at 0x81010001 with its certificate at NV 0x01c00002, an ECC
// P-384 EK at 0x81010016 with its certificate at NV 0x01c00016 (the high
// range), and a platform certificate at 0x01c08000.
type LocalCA struct {
	// Dir holds the CA's configuration, keys and certificates.
	Dir string

	mu sync.Mutex // swtpm_localca keeps a serial-number file
}

// NewLocalCA writes a swtpm-localca configuration into a temporary
// directory. It skips the test if swtpm_setup or swtpm_localca are not
// installed (a failure under CI).
func NewLocalCA(tb testing.TB) *LocalCA {
	tb.Helper()
	Skip(tb)
	tool := testenv.Tool(tb, "swtpm_localca")
	dir := tb.TempDir()
	files := map[string]string{
		"localca.conf": fmt.Sprintf("statedir = %[1]s\nsigningkey = %[1]s/signkey.pem\nissuercert = %[1]s/issuercert.pem\ncertserial = %[1]s/certserial\n", dir),
		// swtpm_localca passes these to the platform certificate.
		"localca.options": "--platform-manufacturer imago\n--platform-version 2.1\n--platform-model test\n",
		"setup.conf": fmt.Sprintf("create_certs_tool = %s\ncreate_certs_tool_config = %s/localca.conf\ncreate_certs_tool_options = %s/localca.options\n",
			tool, dir, dir),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return &LocalCA{Dir: dir}
}

// setupArgs are the swtpm_setup arguments that issue the certificates. The
// config file also names the active banks: Debian's default config
// activates only sha256 whatever --pcr-banks says.
func (ca *LocalCA) setupArgs(tb testing.TB, banks []string) []string {
	tb.Helper()
	ca.mu.Lock()
	defer ca.mu.Unlock()
	base, err := os.ReadFile(filepath.Join(ca.Dir, "setup.conf"))
	if err != nil {
		tb.Fatal(err)
	}
	conf := filepath.Join(tb.TempDir(), "swtpm_setup.conf")
	body := string(base) + "active_pcr_banks = " + strings.Join(banks, ",") + "\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
	return []string{"--create-ek-cert", "--create-platform-cert", "--lock-nvram", "--config", conf}
}

// Certificates returns the CA's root and issuer certificates (the chain an
// EK certificate verifies to). It fails the test if no emulator has been
// manufactured with this CA yet.
func (ca *LocalCA) Certificates(tb testing.TB) []*x509.Certificate {
	tb.Helper()
	var out []*x509.Certificate
	for _, name := range []string{"swtpm-localca-rootca-cert.pem", "issuercert.pem"} {
		data, err := os.ReadFile(filepath.Join(ca.Dir, name))
		if err != nil {
			tb.Fatalf("tpmtest: local CA: %v (manufacture a TPM with it first)", err)
		}
		for len(data) > 0 {
			var b *pem.Block
			b, data = pem.Decode(data)
			if b == nil {
				break
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				tb.Fatalf("tpmtest: local CA %s: %v", name, err)
			}
			out = append(out, c)
		}
	}
	return out
}

// RootsDir writes the CA's root and issuer certificates, and nothing else,
// as PEM files into a new temporary directory and returns it: what
// `imago verifier serve --ek-roots DIR` reads.
func (ca *LocalCA) RootsDir(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	for i, c := range ca.Certificates(tb) {
		p := filepath.Join(dir, fmt.Sprintf("ca-%d.pem", i))
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}
