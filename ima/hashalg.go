package ima

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"fmt"
	"hash"
	"strings"

	"github.com/imago-ima/imago/internal/sm3"
	"github.com/imago-ima/imago/pcr"
)

// HashAlg is the kernel's hash algorithm id (enum hash_algo, uapi
// linux/hash_info.h; ima-spec.md §1.1). It appears as a byte in signature
// headers and, by name, in d-ng prefixes.
type HashAlg uint8

// The kernel's enum hash_algo (ima-spec.md §1.1).
const (
	HashMD4         HashAlg = 0
	HashMD5         HashAlg = 1
	HashSHA1        HashAlg = 2
	HashRMD160      HashAlg = 3
	HashSHA256      HashAlg = 4
	HashSHA384      HashAlg = 5
	HashSHA512      HashAlg = 6
	HashSHA224      HashAlg = 7
	HashRMD128      HashAlg = 8
	HashRMD256      HashAlg = 9
	HashRMD320      HashAlg = 10
	HashWP256       HashAlg = 11
	HashWP384       HashAlg = 12
	HashWP512       HashAlg = 13
	HashTGR128      HashAlg = 14
	HashTGR160      HashAlg = 15
	HashTGR192      HashAlg = 16
	HashSM3         HashAlg = 17
	HashStreebog256 HashAlg = 18
	HashStreebog512 HashAlg = 19
	HashSHA3_256    HashAlg = 20
	HashSHA3_384    HashAlg = 21
	HashSHA3_512    HashAlg = 22

	// hashAlgLast is HASH_ALGO__LAST in current mainline.
	hashAlgLast = 23
)

// hashAlgInfo is one row of ima-spec.md §1.1: hash_algo_name[] and
// hash_digest_size[].
var hashAlgInfo = [hashAlgLast]struct {
	name string
	size int
}{
	{"md4", 16}, {"md5", 16}, {"sha1", 20}, {"rmd160", 20}, {"sha256", 32},
	{"sha384", 48}, {"sha512", 64}, {"sha224", 28}, {"rmd128", 16},
	{"rmd256", 32}, {"rmd320", 40}, {"wp256", 32}, {"wp384", 48},
	{"wp512", 64}, {"tgr128", 16}, {"tgr160", 20}, {"tgr192", 24},
	{"sm3", 32}, {"streebog256", 32}, {"streebog512", 64},
	{"sha3-256", 32}, {"sha3-384", 48}, {"sha3-512", 64},
}

// Valid reports whether a is an id the kernel defines (below HASH_ALGO__LAST).
func (a HashAlg) Valid() bool { return int(a) < hashAlgLast }

// String returns the kernel crypto name (hash_algo_name[]), as printed before
// the ':' of a d-ng field, or "hash_algo_<n>" for an id the kernel does not
// define.
func (a HashAlg) String() string {
	if a.Valid() {
		return hashAlgInfo[a].name
	}
	return fmt.Sprintf("hash_algo_%d", uint8(a))
}

// Size returns the digest size in bytes (hash_digest_size[]), or 0 for an
// unknown id.
func (a HashAlg) Size() int {
	if a.Valid() {
		return hashAlgInfo[a].size
	}
	return 0
}

// New returns a new hash.Hash computing a, or nil where Go cannot compute it
// (md4, rmd*, wp*, tgr*, streebog*).
func (a HashAlg) New() hash.Hash {
	switch a {
	case HashMD5:
		return md5.New()
	case HashSHA1:
		return sha1.New()
	case HashSHA224:
		return sha256.New224()
	case HashSHA256:
		return sha256.New()
	case HashSHA384:
		return sha512.New384()
	case HashSHA512:
		return sha512.New()
	case HashSM3:
		return sm3.New()
	case HashSHA3_256:
		return sha3.New256()
	case HashSHA3_384:
		return sha3.New384()
	case HashSHA3_512:
		return sha3.New512()
	}
	return nil
}

// ParseHashAlg returns the algorithm whose kernel name is s (exact, as in a
// d-ng prefix). It also accepts the TPM spellings "sm3_256" and "sm3-256".
func ParseHashAlg(s string) (HashAlg, error) {
	for i := range hashAlgInfo {
		if hashAlgInfo[i].name == s {
			return HashAlg(i), nil
		}
	}
	switch strings.ToLower(s) {
	case "sm3_256", "sm3-256":
		return HashSM3, nil
	}
	for i := range hashAlgInfo {
		if strings.EqualFold(hashAlgInfo[i].name, s) {
			return HashAlg(i), nil
		}
	}
	return 0, fmt.Errorf("ima: unknown hash algorithm %q", s)
}

// LookupHashAlg returns the algorithm whose kernel name is exactly name, as
// the kernel's match_string(hash_algo_name, ...) finds it (appraise_algos=,
// ima_hash=, d-ng prefixes); unlike ParseHashAlg it accepts no other
// spelling.
func LookupHashAlg(name string) (HashAlg, bool) { return lookupHashAlg(name) }

// lookupHashAlg is LookupHashAlg on a string or bytes, without allocating.
func lookupHashAlg[T string | []byte](b T) (HashAlg, bool) {
	for i := range hashAlgInfo {
		if hashAlgInfo[i].name == string(b) {
			return HashAlg(i), true
		}
	}
	return 0, false
}

// Bank returns the TPM PCR bank computing the same hash (kernel
// tpm2_hash_map, ima-spec.md §1.2), and false where the kernel maps none.
func (a HashAlg) Bank() (pcr.Bank, bool) {
	switch a {
	case HashSHA1:
		return pcr.SHA1, true
	case HashSHA256:
		return pcr.SHA256, true
	case HashSHA384:
		return pcr.SHA384, true
	case HashSHA512:
		return pcr.SHA512, true
	case HashSM3:
		return pcr.SM3256, true
	}
	return 0, false
}

// HashAlgForBank is the inverse of HashAlg.Bank.
func HashAlgForBank(b pcr.Bank) (HashAlg, bool) {
	switch b {
	case pcr.SHA1:
		return HashSHA1, true
	case pcr.SHA256:
		return HashSHA256, true
	case pcr.SHA384:
		return HashSHA384, true
	case pcr.SHA512:
		return HashSHA512, true
	case pcr.SM3256:
		return HashSM3, true
	}
	return 0, false
}
