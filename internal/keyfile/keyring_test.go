package keyfile

// Tests that came with the agent's keyring loader (internal/keyring), now
// this package's: keys found by the kernel's keyid, files that are not keys
// skipped in a folder, a named file that is no key an error.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// newCert makes a self-signed ECDSA certificate with the given
// SubjectKeyIdentifier and returns its DER.
func newCert(t *testing.T, ski []byte) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imago test"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), SubjectKeyId: ski}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestLoadKeyringFolder(t *testing.T) {
	dir := t.TempDir()
	der := newCert(t, []byte{1, 2, 3, 4, 0xaa, 0xbb, 0xcc, 0xdd})
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: newCert(t, []byte{9, 9, 0x11, 0x22, 0x33, 0x44})})
	must(t, os.WriteFile(filepath.Join(dir, "a.der"), der, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "b.pem"), pemData, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "README"), []byte("not a key\n"), 0o644))
	must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	var skipped []string
	kr, err := LoadKeyring([]string{dir}, func(p string, _ error) { skipped = append(skipped, filepath.Base(p)) })
	if err != nil {
		t.Fatal(err)
	}
	if kr.Len() != 2 {
		t.Fatalf("%d keys, want 2", kr.Len())
	}
	// The kernel finds a certificate's key by the last 4 bytes of its
	// SubjectKeyIdentifier (x509 asserts the SKI we set).
	for _, id := range []uint32{0xaabbccdd, 0x11223344} {
		if len(kr.Lookup(id)) == 0 {
			t.Errorf("keyid %08x not found; have %x", id, kr.KeyIDs())
		}
	}
	if len(skipped) != 1 || skipped[0] != "README" {
		t.Errorf("skipped %v, want README", skipped)
	}
	// A named file that holds no key is an error; so is an empty folder.
	if _, err := LoadKeyring([]string{filepath.Join(dir, "README")}, nil); err == nil {
		t.Error("README loaded as a key")
	}
	if _, err := LoadKeyring([]string{filepath.Join(dir, "sub")}, nil); !errors.Is(err, ErrNoKeys) {
		t.Errorf("empty folder: %v", err)
	}
	ski := binary.BigEndian.Uint32([]byte{0xaa, 0xbb, 0xcc, 0xdd})
	if kr2, err := LoadKeyring([]string{filepath.Join(dir, "a.der")}, nil); err != nil || len(kr2.Lookup(ski)) != 1 {
		t.Errorf("single DER file: %v", err)
	}
}

// A folder with more entries than a keyring holds is refused before any
// is read.
func TestLoadKeyringTooManyEntries(t *testing.T) {
	dir := t.TempDir()
	for i := range MaxDirEntries + 1 {
		must(t, os.WriteFile(filepath.Join(dir, strconv.Itoa(i)), nil, 0o644))
	}
	if _, err := LoadKeyring([]string{dir}, func(string, error) {}); !errors.Is(err, ErrTooManyEntries) {
		t.Errorf("%d entries: %v", MaxDirEntries+1, err)
	}
}
