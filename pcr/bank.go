package pcr

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"strings"

	"github.com/imago-ima/imago/internal/sm3"
)

// Bank is a PCR bank, named by its TPM_ALG_ID (TPM 2.0 Part 2, §6.3).
type Bank uint16

// The banks a Linux kernel can map to a hash it computes (ima-spec.md §1.2).
const (
	SHA1   Bank = 0x0004
	SHA256 Bank = 0x000B
	SHA384 Bank = 0x000C
	SHA512 Bank = 0x000D
	SM3256 Bank = 0x0012
)

// Banks lists the known banks in TPM_ALG_ID order.
var Banks = []Bank{SHA1, SHA256, SHA384, SHA512, SM3256}

// String returns the bank's name as tpm2-tools and evmctl spell it:
// sha1, sha256, sha384, sha512, sm3_256, or tpm_alg_<hex> for an unknown id.
func (b Bank) String() string {
	switch b {
	case SHA1:
		return "sha1"
	case SHA256:
		return "sha256"
	case SHA384:
		return "sha384"
	case SHA512:
		return "sha512"
	case SM3256:
		return "sm3_256"
	}
	return fmt.Sprintf("tpm_alg_%x", uint16(b))
}

// KernelName returns the kernel crypto name of the bank's hash ("sm3" for
// sm3_256), as it appears in d-ng prefixes and per-bank list file names.
func (b Bank) KernelName() string {
	if b == SM3256 {
		return "sm3"
	}
	return b.String()
}

// Known reports whether imago can compute the bank's hash.
func (b Bank) Known() bool { return b.Size() != 0 }

// Size returns the digest size in bytes, or 0 for an unknown bank.
func (b Bank) Size() int {
	switch b {
	case SHA1:
		return sha1.Size
	case SHA256, SM3256:
		return 32
	case SHA384:
		return sha512.Size384
	case SHA512:
		return sha512.Size
	}
	return 0
}

// New returns a new hash for the bank, or nil for an unknown bank.
func (b Bank) New() hash.Hash {
	switch b {
	case SHA1:
		return sha1.New()
	case SHA256:
		return sha256.New()
	case SHA384:
		return sha512.New384()
	case SHA512:
		return sha512.New()
	case SM3256:
		return sm3.New()
	}
	return nil
}

// ParseBank accepts a bank name as tpm2-tools, evmctl or the kernel write it
// (sha1, sha256, sha384, sha512, sm3_256, sm3), case-insensitive, or
// tpm_alg_<hex>.
func ParseBank(s string) (Bank, error) {
	switch strings.ToLower(s) {
	case "sha1":
		return SHA1, nil
	case "sha256":
		return SHA256, nil
	case "sha384":
		return SHA384, nil
	case "sha512":
		return SHA512, nil
	case "sm3_256", "sm3-256", "sm3":
		return SM3256, nil
	}
	var id uint16
	if n, err := fmt.Sscanf(strings.ToLower(s), "tpm_alg_%x", &id); err == nil && n == 1 {
		return Bank(id), nil
	}
	return 0, fmt.Errorf("pcr: unknown bank %q (want sha1, sha256, sha384, sha512 or sm3_256)", s)
}

// BankForSize returns the known bank whose digest has n bytes and which a
// per-bank list of that width most likely belongs to: 20 sha1, 32 sha256,
// 48 sha384, 64 sha512.
func BankForSize(n int) (Bank, bool) {
	switch n {
	case 20:
		return SHA1, true
	case 32:
		return SHA256, true
	case 48:
		return SHA384, true
	case 64:
		return SHA512, true
	}
	return 0, false
}
