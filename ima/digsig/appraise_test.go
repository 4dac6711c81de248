package digsig

import (
	"errors"
	"os"
	"testing"

	"github.com/imago-ima/imago/ima"
)

// signedEntry returns the sig field and file digest of a named entry of the
// real-kernel capture p-ima-sig-signed.
func signedEntry(t *testing.T, name string) ([]byte, ima.Digest) {
	t.Helper()
	f, err := os.Open(signedCapture(t, "binary_runtime_measurements"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for e, err := range ima.NewListReader(f, ima.ReaderOptions{}).All() {
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := e.Name(); n == name {
			_, raw, err := e.Signature()
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.FileDigest()
			if err != nil {
				t.Fatal(err)
			}
			return raw, d
		}
	}
	t.Fatalf("no entry %s", name)
	return nil, ima.Digest{}
}

// The cases follow the kernel's ima_appraise_measurement, xattr_verify and
// process_measurement (appraise_algos), cause by cause.
func TestAppraise(t *testing.T) {
	kr := keyringFrom(t, signedCapture(t, "x509_ima.der"))
	good, goodDigest := signedEntry(t, "/signed/hello-signed.sh")
	bad, badDigest := signedEntry(t, "/signed/data-badsig.txt")
	hello := sha(t, ima.HashSHA256, []byte("hello world\n"))
	hello1 := sha(t, ima.HashSHA1, []byte("hello world\n"))
	other := sha(t, ima.HashSHA256, []byte("hello world!\n"))
	hashNG, hash1 := unhex(t, evmctlHashSHA256), unhex(t, evmctlHashSHA1)
	v3 := append([]byte{byte(TypeDigSig), 3}, good[2:]...)
	verityV2 := append([]byte{byte(TypeVerityDigSig)}, good[1:]...)
	verityV3 := append([]byte{byte(TypeVerityDigSig), 3}, good[2:]...)
	sig := Requirements{Signature: true}

	tests := []struct {
		name   string
		value  []byte
		digest ima.Digest
		req    Requirements
		status Status // -1: pass
		cause  string
		is     error
	}{
		{"hash ng", hashNG, hello, Requirements{}, -1, "", nil},
		{"hash sha1 legacy", hash1, hello1, Requirements{}, -1, "", nil},
		{"hash changed file", hashNG, other, Requirements{}, StatusFail, "invalid-hash", nil},
		{"hash other algo", hashNG, hello1, Requirements{}, StatusFail, "invalid-hash", ErrAlgorithmMismatch},
		{"hash where imasig required", hashNG, hello, sig, StatusFail, "IMA-signature-required", nil},
		{"hash where verity sig required", hashNG, hello, Requirements{Signature: true, Verity: true}, StatusFail, "verity-signature-required", nil},
		{"no xattr", nil, hello, Requirements{}, StatusNoLabel, "missing-hash", nil},
		{"no xattr, imasig", nil, hello, sig, StatusNoLabel, "IMA-signature-required", nil},
		{"sig good", good, goodDigest, sig, -1, "", nil},
		{"sig good, no rule flags", good, goodDigest, Requirements{}, -1, "", nil},
		{"sig bad", bad, badDigest, sig, StatusFail, "invalid-signature", ErrBadSignature},
		{"sig, changed file", good, badDigest, sig, StatusFail, "invalid-signature", ErrBadSignature},
		{"sig, unknown key", good, goodDigest, Requirements{}, StatusFail, "invalid-signature", ErrUnknownKey},
		{"sig v2 where sigv3 required", good, goodDigest, Requirements{Signature: true, SigV3: true}, StatusFail, "IMA-sigv3-required", nil},
		{"sig v3 over the wrong message", v3, goodDigest, Requirements{Signature: true, SigV3: true}, StatusFail, "invalid-signature", ErrBadSignature},
		{"sig where verity required", good, goodDigest, Requirements{Signature: true, Verity: true}, StatusFail, "verity-signature-required", nil},
		{"sig v4", append([]byte{3, 4}, good[2:]...), goodDigest, sig, StatusFail, "invalid-signature-version", ErrMalformed},
		{"sig cut short", good[:100], goodDigest, sig, StatusFail, "invalid-signature", ErrMalformed},
		{"verity where imasig required", verityV3, goodDigest, sig, StatusFail, "IMA-signature-required", nil},
		{"verity v2", verityV2, goodDigest, Requirements{Signature: true, Verity: true}, StatusFail, "invalid-signature-version", nil},
		{"verity v3 wrong message", verityV3, goodDigest, Requirements{Signature: true, Verity: true}, StatusFail, "invalid-verity-signature", ErrBadSignature},
		{"hmac", unhex(t, "02"+"00112233445566778899aabbccddeeff00112233"), hello, Requirements{}, StatusUnknown, "unknown-ima-data", ErrUnknownType},
		{"portable sig", append([]byte{5}, good[1:]...), goodDigest, Requirements{}, StatusUnknown, "unknown-ima-data", nil},
		{"sm3 sig", append([]byte{3, 2, byte(ima.HashSM3)}, good[3:]...), ima.Digest{Alg: ima.HashSM3, Sum: goodDigest.Sum}, Requirements{}, StatusUnknown, "invalid-signature", ErrUnsupported},
		{"allowed algos ok", good, goodDigest, Requirements{AllowedAlgos: []ima.HashAlg{ima.HashSHA512, ima.HashSHA256}}, -1, "", nil},
		{"allowed algos denied", hash1, hello1, Requirements{AllowedAlgos: []ima.HashAlg{ima.HashSHA256}}, StatusFail, "denied-hash-algorithm", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys := kr
			if tc.is == ErrUnknownKey {
				keys = &Keyring{}
			}
			err := Appraise(tc.value, tc.digest, keys, tc.req)
			if tc.status < 0 {
				if err != nil {
					t.Fatalf("got %v, want pass", err)
				}
				return
			}
			var ae *AppraisalError
			if !errors.As(err, &ae) {
				t.Fatalf("got %v, want an *AppraisalError", err)
			}
			if ae.Status != tc.status || ae.Cause != tc.cause {
				t.Errorf("got %s %q, want %s %q (%v)", ae.Status, ae.Cause, tc.status, tc.cause, err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("got %v, want it to wrap %v", err, tc.is)
			}
		})
	}
}
