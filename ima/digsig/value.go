package digsig

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/imago-ima/imago/ima"
)

// Type is the first byte of a security.ima (or security.evm) value, the
// kernel's enum evm_ima_xattr_type (ima-spec.md §1.3).
type Type uint8

// The kernel's enum evm_ima_xattr_type.
const (
	TypeDigest         Type = 0x01 // IMA_XATTR_DIGEST: legacy sha1 (or md5) digest
	TypeHMAC           Type = 0x02 // EVM_XATTR_HMAC: security.evm only
	TypeDigSig         Type = 0x03 // EVM_IMA_XATTR_DIGSIG: signature v2 or v3
	TypeDigestNG       Type = 0x04 // IMA_XATTR_DIGEST_NG: hash_algo ‖ digest
	TypePortableDigSig Type = 0x05 // EVM_XATTR_PORTABLE_DIGSIG: security.evm signature
	TypeVerityDigSig   Type = 0x06 // IMA_VERITY_DIGSIG: signature v3 over an fs-verity digest
)

// String returns the kernel's name for t.
func (t Type) String() string {
	switch t {
	case TypeDigest:
		return "IMA_XATTR_DIGEST"
	case TypeHMAC:
		return "EVM_XATTR_HMAC"
	case TypeDigSig:
		return "EVM_IMA_XATTR_DIGSIG"
	case TypeDigestNG:
		return "IMA_XATTR_DIGEST_NG"
	case TypePortableDigSig:
		return "EVM_XATTR_PORTABLE_DIGSIG"
	case TypeVerityDigSig:
		return "IMA_VERITY_DIGSIG"
	}
	return fmt.Sprintf("type_0x%02x", uint8(t))
}

// IsSignature reports whether values of type t carry a signature header.
func (t Type) IsSignature() bool {
	return t == TypeDigSig || t == TypePortableDigSig || t == TypeVerityDigSig
}

// MaxValueLen bounds a value: XATTR_SIZE_MAX, the largest xattr value the
// kernel stores (a signature header's u16 sig_size fits well inside it).
const MaxValueLen = 65536

// Value is a decoded security.ima value.
type Value struct {
	Type Type
	// Digest is the stored file digest of a TypeDigest or TypeDigestNG
	// value. Sum aliases the parsed bytes.
	Digest ima.Digest
	// Sig is the signature header and signature of a TypeDigSig,
	// TypePortableDigSig or TypeVerityDigSig value. Signature aliases the
	// parsed bytes.
	Sig ima.SigHeader

	// md5Padded: a legacy md5 digest stored in 20 bytes, the last 4 zero
	// (the kernel's backward-compatible reading, ima_get_hash_algo).
	md5Padded bool
}

// ParseValue decodes a security.ima value (ima-spec.md §1.3, §10.1, §10.4):
//
//   - 0x01 ‖ digest: sha1 (20 bytes) or md5 (16 bytes, or 20 with the last
//     4 zero, as the kernel reads old values);
//   - 0x04 ‖ hash_algo ‖ digest, the digest exactly hash_algo's size;
//   - 0x03, 0x05, 0x06 ‖ signature header ‖ signature, decoded by
//     ima.ParseSigHeader.
//
// Any other type gives a *FormatError wrapping ErrUnknownType. On error the
// Value is zero.
func ParseValue(b []byte) (Value, error) {
	if len(b) == 0 {
		return Value{}, formatErr(0, ErrMalformed, "empty value")
	}
	if len(b) > MaxValueLen {
		return Value{}, formatErr(MaxValueLen, ErrTooLarge, "value of %d bytes exceeds %d", len(b), MaxValueLen)
	}
	t := Type(b[0])
	switch t {
	case TypeDigest:
		sum := b[1:]
		switch len(sum) {
		case 20:
			if binary.BigEndian.Uint32(sum[16:]) == 0 {
				return Value{Type: t, Digest: ima.Digest{Alg: ima.HashMD5, Sum: sum[:16]}, md5Padded: true}, nil
			}
			return Value{Type: t, Digest: ima.Digest{Alg: ima.HashSHA1, Sum: sum}}, nil
		case 16:
			return Value{Type: t, Digest: ima.Digest{Alg: ima.HashMD5, Sum: sum}}, nil
		}
		return Value{}, formatErr(1, ErrMalformed, "legacy digest of %d bytes, want 20 (sha1) or 16 (md5)", len(sum))
	case TypeDigestNG:
		if len(b) < 2 {
			return Value{}, formatErr(1, ErrMalformed, "digest-ng value cut short before its hash_algo byte")
		}
		alg := ima.HashAlg(b[1])
		if !alg.Valid() {
			return Value{}, formatErr(1, ErrMalformed, "digest-ng hash_algo %d is not a kernel hash algorithm", b[1])
		}
		sum := b[2:]
		if len(sum) != alg.Size() {
			return Value{}, formatErr(2, ErrMalformed, "digest-ng %s digest of %d bytes, want %d", alg, len(sum), alg.Size())
		}
		return Value{Type: t, Digest: ima.Digest{Alg: alg, Sum: sum}}, nil
	case TypeDigSig, TypePortableDigSig, TypeVerityDigSig:
		h, err := ima.ParseSigHeader(b)
		if err != nil {
			var he *ima.SigHeaderError
			if errors.As(err, &he) {
				return Value{}, &FormatError{Offset: he.Offset, Err: he.Err}
			}
			return Value{}, &FormatError{Offset: 0, Err: err}
		}
		return Value{Type: t, Sig: h}, nil
	}
	return Value{}, formatErr(0, ErrUnknownType, "type 0x%02x (%s)", b[0], t)
}

// Append appends the value's bytes to dst: ParseValue then Append gives
// back the input.
func (v Value) Append(dst []byte) []byte {
	switch v.Type {
	case TypeDigest:
		dst = append(dst, byte(v.Type))
		dst = append(dst, v.Digest.Sum...)
		if v.md5Padded {
			dst = append(dst, 0, 0, 0, 0)
		}
		return dst
	case TypeDigestNG:
		dst = append(dst, byte(v.Type), byte(v.Digest.Alg))
		return append(dst, v.Digest.Sum...)
	}
	return appendSig(dst, v.Type, v.Sig.Version, v.Sig.HashAlg, v.Sig.KeyID, v.Sig.Signature)
}

// HashAlg returns the algorithm of the file digest the value is checked
// against: the digest's for hash values, hash_algo for signatures.
func (v Value) HashAlg() ima.HashAlg {
	if v.Type.IsSignature() {
		return v.Sig.HashAlg
	}
	return v.Digest.Alg
}

// appendSig appends a signature value (struct signature_v2_hdr with its type
// byte, ima-spec.md §10.1): sig_size is len(sig).
func appendSig(dst []byte, t Type, version uint8, alg ima.HashAlg, keyid uint32, sig []byte) []byte {
	dst = append(dst, byte(t), version, byte(alg))
	dst = binary.BigEndian.AppendUint32(dst, keyid)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(sig)))
	return append(dst, sig...)
}

// DigestValue returns the hash value the kernel's ima_fix_xattr and evmctl
// ima_hash write for d: 0x01 ‖ digest for sha1 and older (md4, md5), and
// 0x04 ‖ hash_algo ‖ digest for every other algorithm (ima-spec.md §10.4).
func DigestValue(d ima.Digest) ([]byte, error) {
	if !d.Alg.Valid() {
		return nil, fmt.Errorf("digsig: %w: hash algorithm %s", ErrUnsupported, d.Alg)
	}
	if len(d.Sum) != d.Alg.Size() {
		return nil, &AlgorithmMismatchError{Value: d.Alg, Digest: d.Alg, Size: len(d.Sum)}
	}
	if d.Alg <= ima.HashSHA1 {
		return append([]byte{byte(TypeDigest)}, d.Sum...), nil
	}
	return append([]byte{byte(TypeDigestNG), byte(d.Alg)}, d.Sum...), nil
}

// HashAlgOf returns the algorithm the kernel hashes a file with before it
// appraises it against value (ima_get_hash_algo, ima-spec.md §10): a
// signature's hash_algo (versions 2 and 3 of 0x03, version 3 of 0x06), a
// digest-ng's algorithm, md5 or sha1 for a legacy digest by its length, and
// def (the kernel's ima_hash) otherwise.
func HashAlgOf(value []byte, def ima.HashAlg) ima.HashAlg {
	if len(value) == 0 {
		return def
	}
	switch Type(value[0]) {
	case TypeDigSig:
		if len(value) > 9 && (value[1] == 2 || value[1] == 3) && ima.HashAlg(value[2]).Valid() {
			return ima.HashAlg(value[2])
		}
	case TypeVerityDigSig:
		if len(value) > 9 && value[1] == 3 && ima.HashAlg(value[2]).Valid() {
			return ima.HashAlg(value[2])
		}
	case TypeDigestNG:
		if len(value) > 1 && ima.HashAlg(value[1]).Valid() {
			return ima.HashAlg(value[1])
		}
	case TypeDigest:
		switch len(value) {
		case 21:
			if binary.BigEndian.Uint32(value[17:]) == 0 {
				return ima.HashMD5
			}
			return ima.HashSHA1
		case 17:
			return ima.HashMD5
		}
	}
	return def
}
