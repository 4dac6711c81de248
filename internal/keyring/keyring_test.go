package keyring

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
	"testing"
	"time"
)

// cert makes a self-signed ECDSA certificate with the given
// SubjectKeyIdentifier and returns its DER.
func cert(t *testing.T, ski []byte) []byte {
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

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	der := cert(t, []byte{1, 2, 3, 4, 0xaa, 0xbb, 0xcc, 0xdd})
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert(t, []byte{9, 9, 0x11, 0x22, 0x33, 0x44})})
	must(t, os.WriteFile(filepath.Join(dir, "a.der"), der, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "b.pem"), pemData, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "README"), []byte("not a key\n"), 0o644))
	must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	kr, skipped, err := Load(dir)
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
	if len(skipped) != 1 || filepath.Base(skipped[0].Path) != "README" {
		t.Errorf("skipped %+v, want README", skipped)
	}
	// A named file that holds no key is an error; so is an empty dir.
	if _, _, err := Load(filepath.Join(dir, "README")); err == nil {
		t.Error("README loaded as a key")
	}
	if _, _, err := Load(filepath.Join(dir, "sub")); !errors.Is(err, ErrNoKeys) {
		t.Errorf("empty directory: %v", err)
	}
	ski := binary.BigEndian.Uint32([]byte{0xaa, 0xbb, 0xcc, 0xdd})
	if kr2, _, err := Load(filepath.Join(dir, "a.der")); err != nil || len(kr2.Lookup(ski)) != 1 {
		t.Errorf("single DER file: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
