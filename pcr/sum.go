package pcr

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"

	"github.com/imago-ima/imago/internal/sm3"
)

// MaxDigestSize is the largest digest of a bank (sha512).
const MaxDigestSize = 64

// Sum writes H_b(data) to dst and reports whether b is a bank imago can
// compute. It is the one-shot form for hot paths: no hash.Hash, no
// allocation.
func (b Bank) Sum(dst *[MaxDigestSize]byte, data []byte) bool {
	switch b {
	case SHA1:
		s := sha1.Sum(data)
		copy(dst[:], s[:])
	case SHA256:
		s := sha256.Sum256(data)
		copy(dst[:], s[:])
	case SHA384:
		s := sha512.Sum384(data)
		copy(dst[:], s[:])
	case SHA512:
		s := sha512.Sum512(data)
		copy(dst[:], s[:])
	case SM3256:
		s := sm3.Sum(data)
		copy(dst[:], s[:])
	default:
		return false
	}
	return true
}
