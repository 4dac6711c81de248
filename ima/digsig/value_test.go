package digsig

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/imago-ima/imago/ima"
)

// Values evmctl 1.4 wrote for a file holding "hello world\n" (evmctl
// ima_hash, evmctl ima_hash -a sha1, evmctl ima_sign --key ec.pem), read
// back with getfattr -e hex on 2026-11-27.
const (
	evmctlHashSHA256 = "0404a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447"
	evmctlHashSHA1   = "0122596363b3de40b06f981fb85d82312e8c0ed511"
	evmctlSigEC      = "030204e3ec210100473045022100c28c21bb0f34711c63b6e8b9daf172c3eca2005df1a46f2bc752f5973fe8c43002202d905f5cc8298579e9f114a9dd078a6050e00f28227b93dfbdd999f4d974655c"
)

func TestParseValue(t *testing.T) {
	hello := []byte("hello world\n")
	s256 := sha256.Sum256(hello)
	s1 := sha1.Sum(hello)
	tests := []struct {
		name    string
		hex     string
		typ     Type
		alg     ima.HashAlg
		sum     []byte // for hashes
		keyid   uint32 // for signatures
		version uint8
	}{
		{"evmctl ima_hash sha256", evmctlHashSHA256, TypeDigestNG, ima.HashSHA256, s256[:], 0, 0},
		{"evmctl ima_hash sha1", evmctlHashSHA1, TypeDigest, ima.HashSHA1, s1[:], 0, 0},
		{"legacy md5", "01" + "00112233445566778899aabbccddeeff", TypeDigest, ima.HashMD5, unhex(t, "00112233445566778899aabbccddeeff"), 0, 0},
		{"legacy md5 padded to 20", "01" + "00112233445566778899aabbccddeeff00000000", TypeDigest, ima.HashMD5, unhex(t, "00112233445566778899aabbccddeeff"), 0, 0},
		{"evmctl ima_sign ec", evmctlSigEC, TypeDigSig, ima.HashSHA256, nil, 0xe3ec2101, 2},
		{"sigv3 verity", "060304" + "01020304" + "0002" + "abcd", TypeVerityDigSig, ima.HashSHA256, nil, 0x01020304, 3},
		{"portable", "050202" + "deadbeef" + "0000", TypePortableDigSig, ima.HashSHA1, nil, 0xdeadbeef, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := unhex(t, tc.hex)
			v, err := ParseValue(in)
			if err != nil {
				t.Fatal(err)
			}
			if v.Type != tc.typ || v.HashAlg() != tc.alg {
				t.Errorf("got %s %s, want %s %s", v.Type, v.HashAlg(), tc.typ, tc.alg)
			}
			if tc.typ.IsSignature() {
				if v.Sig.KeyID != tc.keyid || v.Sig.Version != tc.version || int(v.Sig.SigSize) != len(v.Sig.Signature) {
					t.Errorf("header %+v", v.Sig)
				}
			} else if !bytes.Equal(v.Digest.Sum, tc.sum) {
				t.Errorf("digest %x, want %x", v.Digest.Sum, tc.sum)
			}
			if out := v.Append(nil); !bytes.Equal(out, in) {
				t.Errorf("Append gives %x, want %x", out, in)
			}
		})
	}
}

func TestParseValueErrors(t *testing.T) {
	tests := []struct {
		name     string
		hex      string
		offset   int
		sentinel error
	}{
		{"empty", "", 0, ErrMalformed},
		{"hmac", "02" + "00112233445566778899aabbccddeeff00112233", 0, ErrUnknownType},
		{"type 7", "07", 0, ErrUnknownType},
		{"legacy 19 bytes", "01" + "00112233445566778899aabbccddeeff001122", 1, ErrMalformed},
		{"ng no algo", "04", 1, ErrMalformed},
		{"ng bad algo", "0417" + "00", 1, ErrMalformed},
		{"ng short digest", "0404" + "0011", 2, ErrMalformed},
		{"ng long digest", evmctlHashSHA256 + "00", 2, ErrMalformed},
		{"sig header cut", "03020400", 4, ErrMalformed},
		{"sig version 1", "030104" + "01020304" + "0000", 1, ErrMalformed},
		{"sig size too big", "030204" + "01020304" + "0003" + "abcd", 7, ErrMalformed},
		{"sig size too small", "030204" + "01020304" + "0001" + "abcd", 7, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := ParseValue(unhex(t, tc.hex))
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a *FormatError", err)
			}
			if fe.Offset != tc.offset || !errors.Is(err, tc.sentinel) {
				t.Errorf("got offset %d (%v), want %d wrapping %v", fe.Offset, err, tc.offset, tc.sentinel)
			}
			if v.Type != 0 || v.Sig.Signature != nil || v.Digest.Sum != nil {
				t.Errorf("partial value with error: %+v", v)
			}
		})
	}
	big := make([]byte, MaxValueLen+1)
	big[0] = 3
	if _, err := ParseValue(big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized value: %v", err)
	}
}

// DigestValue writes what evmctl ima_hash (and the kernel's ima_fix_xattr)
// writes: 0x01 for sha1, 0x04 for the rest.
func TestDigestValueMatchesEvmctl(t *testing.T) {
	hello := []byte("hello world\n")
	for _, tc := range []struct {
		alg  ima.HashAlg
		want string
	}{{ima.HashSHA256, evmctlHashSHA256}, {ima.HashSHA1, evmctlHashSHA1}} {
		got, err := DigestValue(sha(t, tc.alg, hello))
		if err != nil || !bytes.Equal(got, unhex(t, tc.want)) {
			t.Errorf("%s: got %x %v, want %s", tc.alg, got, err, tc.want)
		}
	}
	if _, err := DigestValue(ima.Digest{Alg: ima.HashSHA256, Sum: make([]byte, 20)}); !errors.Is(err, ErrAlgorithmMismatch) {
		t.Errorf("short digest: %v", err)
	}
}

// HashAlgOf follows the kernel's ima_get_hash_algo.
func TestHashAlgOf(t *testing.T) {
	tests := []struct {
		hex  string
		want ima.HashAlg
	}{
		{"", ima.HashSHA512},
		{evmctlHashSHA256, ima.HashSHA256},
		{evmctlHashSHA1, ima.HashSHA1},
		{"01" + "00112233445566778899aabbccddeeff00000000", ima.HashMD5},
		{"01" + "00112233445566778899aabbccddeeff", ima.HashMD5},
		{evmctlSigEC, ima.HashSHA256},
		{"030305" + "01020304" + "0001" + "00", ima.HashSHA384}, // sigv3 regular file
		{"060306" + "01020304" + "0001" + "00", ima.HashSHA512}, // verity
		{"060206" + "01020304" + "0001" + "00", ima.HashSHA512}, // verity v2: default
		{"030204" + "01020304" + "0000", ima.HashSHA512},        // header only: default
		{"0420" + "00", ima.HashSHA512},                         // unknown algo: default
		{"02" + "00112233445566778899aabbccddeeff00112233", ima.HashSHA512},
	}
	for _, tc := range tests {
		if got := HashAlgOf(unhex(t, tc.hex), ima.HashSHA512); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.hex, got, tc.want)
		}
	}
}
