package digsig

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/testfixture"
)

// The real-kernel capture p-ima-sig-signed carries three ima-sig entries
// whose signatures evmctl 1.4 and openssl checked at capture
// (verify.txt): /signed/hello-signed.sh and /signed/data-signed.txt
// verify with x509_ima.der (keyid b2064dbe), /signed/data-badsig.txt is
// deliberately bad.
func TestRealKernelSignedList(t *testing.T) {
	for _, cert := range []string{"x509_ima.der", "x509_ima.pem"} {
		t.Run(cert, func(t *testing.T) {
			kr := keyringFrom(t, signedCapture(t, cert))
			// evmctl -v printed "keyid: b2064dbe" for this certificate.
			if ids := kr.KeyIDs(); len(ids) != 1 || ids[0] != 0xb2064dbe {
				t.Fatalf("keyids %08x, want [b2064dbe]", ids)
			}
			want := map[string]error{
				"/signed/hello-signed.sh": nil,
				"/signed/data-signed.txt": nil,
				"/signed/data-badsig.txt": ErrBadSignature,
			}
			seen := 0
			f, err := os.Open(signedCapture(t, "binary_runtime_measurements"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for e, err := range ima.NewListReader(f, ima.ReaderOptions{}).All() {
				if err != nil {
					t.Fatal(err)
				}
				h, raw, err := e.Signature()
				if errors.Is(err, ima.ErrNoField) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				name, _ := e.Name()
				d, err := e.FileDigest()
				if err != nil {
					t.Fatal(err)
				}
				wantErr, ok := want[name]
				if !ok {
					t.Fatalf("unexpected signed entry %s", name)
				}
				seen++
				for _, got := range []error{Verify(raw, d, kr), VerifyHeader(h, d, kr), VerifyEntry(e, kr)} {
					if wantErr == nil && got != nil || wantErr != nil && !errors.Is(got, wantErr) {
						t.Errorf("%s: got %v, want %v", name, got, wantErr)
					}
				}
				var se *SignatureError
				if wantErr != nil && (!errors.As(Verify(raw, d, kr), &se) || se.KeyID != 0xb2064dbe) {
					t.Errorf("%s: want a *SignatureError for keyid b2064dbe", name)
				}
				// A digest of the wrong algorithm is named as such.
				if err := Verify(raw, ima.Digest{Alg: ima.HashSHA1, Sum: d.Sum[:20]}, kr); !errors.Is(err, ErrAlgorithmMismatch) {
					t.Errorf("%s: sha1 digest: %v", name, err)
				}
				// An empty keyring does not know the key.
				var uk *UnknownKeyError
				if err := Verify(raw, d, &Keyring{}); !errors.As(err, &uk) || uk.KeyID != 0xb2064dbe || !errors.Is(err, ErrUnknownKey) {
					t.Errorf("%s: empty keyring: %v", name, err)
				}
			}
			if seen != len(want) {
				t.Errorf("%d signed entries, want %d", seen, len(want))
			}
		})
	}
}

// keylime's ima-sig test lines (testdata/PROVENANCE): RSA with keyid
// f3452d23 and ECDSA secp256k1 with keyid 531f4025, sha1 and sha256, all
// four checked with openssl. Go's standard library has no secp256k1: those
// two verify through the decred secp256k1 curve (ParseKey reads the private
// key file as Keylime does).
func TestKeylimeSignatures(t *testing.T) {
	kr := keyringFrom(t, "testdata/keylime/rsa2048pub.pem")
	if ids := kr.KeyIDs(); len(ids) != 1 || ids[0] != 0xf3452d23 {
		t.Fatalf("rsa2048pub.pem keyids %08x, want [f3452d23]", ids)
	}
	// The secp256k1 key id from its uncompressed point (SEC1 ECPrivateKey,
	// RFC 5915: the public key is the [1] BIT STRING).
	var ecPriv struct {
		Version    int
		PrivateKey []byte
		Params     asn1.RawValue  `asn1:"optional,explicit,tag:0"`
		PublicKey  asn1.BitString `asn1:"optional,explicit,tag:1"`
	}
	data := readFile(t, "testdata/keylime/secp256k1.pem")
	var block *pem.Block
	for rest := data; ; {
		block, rest = pem.Decode(rest)
		if block == nil || block.Type == "EC PRIVATE KEY" {
			break
		}
	}
	if block == nil {
		t.Fatal("no EC PRIVATE KEY")
	}
	if _, err := asn1.Unmarshal(block.Bytes, &ecPriv); err != nil {
		t.Fatal(err)
	}
	if id := KeyIDFromPublicKeyBytes(ecPriv.PublicKey.Bytes); id != 0x531f4025 {
		t.Errorf("secp256k1 keyid %08x, want 531f4025", id)
	}
	if _, err := kr.Add(data); err == nil {
		t.Error("a private key file gave keys")
	}
	k1, err := ParseKey(data)
	if err != nil {
		t.Fatal(err)
	}
	if k1.KeyID != 0x531f4025 {
		t.Errorf("ParseKey secp256k1 keyid %08x, want 531f4025", k1.KeyID)
	}
	if err := kr.AddParsed(k1); err != nil {
		t.Fatal(err)
	}

	lines := strings.Split(strings.TrimSpace(string(readFile(t, "testdata/keylime/ima-sig-lines.txt"))), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines", len(lines))
	}
	for i, line := range lines {
		e, err := ima.ParseASCIILine([]byte(line), nil)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		_, raw, err := e.Signature()
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		d, _ := e.FileDigest()
		err = Verify(raw, d, kr)
		if err != nil {
			t.Errorf("line %d (%s): %v", i+1, d.Alg, err)
		}
		// Tampered digest: bad signature.
		bad := bytes.Clone(d.Sum)
		bad[0] ^= 1
		if err := Verify(raw, ima.Digest{Alg: d.Alg, Sum: bad}, kr); !errors.Is(err, ErrBadSignature) {
			t.Errorf("line %d tampered: %v", i+1, err)
		}
	}
}

// The keylime-tests fixture test3 (MANIFEST.md) has ima-sig entries signed
// by Red Hat's P-384 key d3320449, whose certificate is not included, and
// a certificate eckey-ecdsa.pem of another key.
func TestKeylimeTestsFixture(t *testing.T) {
	dir := testfixture.Path(t, "public/keylime-tests/functional/keylime_create_policy-static-data/test3")
	kr := keyringFrom(t, filepath.Join(dir, "eckey-ecdsa.pem"))
	// openssl x509 -ext subjectKeyIdentifier: ...:3E:14:4A:C9.
	found := false
	for _, id := range kr.KeyIDs() {
		found = found || id == 0x3e144ac9
	}
	if !found {
		t.Errorf("eckey-ecdsa.pem keyids %08x, want 3e144ac9 among them", kr.KeyIDs())
	}
	f, err := os.Open(filepath.Join(dir, "ascii_runtime_measurements-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for e, err := range ima.NewListReader(f, ima.ReaderOptions{}).All() {
		if err != nil {
			t.Fatal(err)
		}
		h, raw, err := e.Signature()
		if err != nil {
			continue
		}
		n++
		d, _ := e.FileDigest()
		var uk *UnknownKeyError
		if err := Verify(raw, d, kr); !errors.As(err, &uk) || uk.KeyID != 0xd3320449 || h.HashAlg != ima.HashSHA256 {
			t.Errorf("entry %d: %v", n, err)
		}
	}
	if n != 3 {
		t.Errorf("%d signed entries, want 3", n)
	}
}

// Signatures made by openssl verify, and signatures made by Sign and
// SignV3 verify with openssl: v2 over the digest, v3 over
// sha256(type ‖ algo ‖ digest) computed here with openssl dgst.
func TestOpenSSLInterop(t *testing.T) {
	dir := t.TempDir()
	opensslKeys(t, dir)
	kr := keyringFrom(t, filepath.Join(dir, "rsa.der"), filepath.Join(dir, "ec.der"))
	file := []byte("imago interop test file\n")
	d := sha(t, ima.HashSHA256, file)
	for _, k := range []string{"rsa", "ec"} {
		t.Run(k, func(t *testing.T) {
			certDER := readFile(t, filepath.Join(dir, k+".der"))
			cert, err := x509.ParseCertificate(certDER)
			if err != nil {
				t.Fatal(err)
			}
			keyid, err := KeyIDFromCertificate(cert)
			if err != nil {
				t.Fatal(err)
			}
			// subjectKeyIdentifier=hash: both key id methods agree.
			if pid, _ := KeyIDFromPublicKey(cert.PublicKey); pid != keyid {
				t.Errorf("SKID keyid %08x, public key keyid %08x", keyid, pid)
			}
			priv := parsePrivateKey(t, filepath.Join(dir, k+".pem"))

			// v2, openssl -> digsig.
			os.WriteFile(filepath.Join(dir, "digest"), d.Sum, 0o600)
			sig := openssl(t, dir, nil, "pkeyutl", "-sign", "-inkey", k+".pem", "-pkeyopt", "digest:sha256", "-in", "digest")
			v2 := appendSig(nil, TypeDigSig, 2, ima.HashSHA256, keyid, sig)
			if err := Verify(v2, d, kr); err != nil {
				t.Errorf("openssl v2: %v", err)
			}
			// v2, digsig -> openssl.
			mine, err := Sign(priv, keyid, ima.HashSHA256, d.Sum)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "sig"), mine[9:], 0o600)
			openssl(t, dir, nil, "pkeyutl", "-verify", "-pubin", "-inkey", k+"pub.pem", "-pkeyopt", "digest:sha256", "-in", "digest", "-sigfile", "sig")

			// v3: the file id prefix, hashed and signed by openssl dgst.
			for _, typ := range []Type{TypeDigSig, TypeVerityDigSig} {
				fileID := append([]byte{byte(typ), byte(ima.HashSHA256)}, d.Sum...)
				sig := openssl(t, dir, fileID, "dgst", "-sha256", "-sign", k+".pem")
				v3 := appendSig(nil, typ, 3, ima.HashSHA256, keyid, sig)
				if err := Verify(v3, d, kr); err != nil {
					t.Errorf("openssl v3 %s: %v", typ, err)
				}
				// The same signature as v2 does not verify.
				v3[1] = 2
				if typ == TypeDigSig {
					if err := Verify(v3, d, kr); !errors.Is(err, ErrBadSignature) {
						t.Errorf("v3 signature read as v2: %v", err)
					}
				}
				mine, err := SignV3(priv, typ, keyid, ima.HashSHA256, d.Sum)
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(dir, "sig"), mine[9:], 0o600)
				os.WriteFile(filepath.Join(dir, "fileid"), fileID, 0o600)
				openssl(t, dir, nil, "dgst", "-sha256", "-verify", k+"pub.pem", "-signature", "sig", "fileid")
			}
		})
	}
}

func parsePrivateKey(t *testing.T, path string) crypto.Signer {
	t.Helper()
	dir, base := filepath.Dir(path), filepath.Base(path)
	k := strings.TrimSuffix(base, ".pem")
	openssl(t, dir, nil, "pkey", "-in", base, "-pubout", "-out", k+"pub.pem")
	block, _ := pem.Decode(readFile(t, path))
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return key.(crypto.Signer)
}
