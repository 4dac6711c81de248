package enroll

import (
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// ErrAK marks an attestation key that quotes cannot be trusted from.
var ErrAK = errors.New("enroll: not an acceptable attestation key")

// CheckAK checks an AK's public area: a restricted signing key
// (restricted, signEncrypt, not decrypt) bound to its TPM (fixedTPM,
// fixedParent, sensitiveDataOrigin), SHA-256 or stronger as name algorithm,
// RSA of 2048 bits or more with RSASSA or RSAPSS, or ECC NIST P-256/P-384/
// P-521 with ECDSA. The TPM guarantees these attributes for the object
// whose name TPM2_ActivateCredential checks, so a key that passes here and
// activates the credential signs only TPM-generated attestations.
func CheckAK(p *tpm2.TPMTPublic) error {
	a := p.ObjectAttributes
	switch {
	case !a.Restricted:
		return fmt.Errorf("%w: not restricted", ErrAK)
	case !a.SignEncrypt:
		return fmt.Errorf("%w: not a signing key", ErrAK)
	case a.Decrypt:
		return fmt.Errorf("%w: a decryption key", ErrAK)
	case !a.FixedTPM:
		return fmt.Errorf("%w: not fixedTPM (the key may leave the TPM)", ErrAK)
	case !a.FixedParent:
		return fmt.Errorf("%w: not fixedParent", ErrAK)
	case !a.SensitiveDataOrigin:
		return fmt.Errorf("%w: not sensitiveDataOrigin (the key was imported)", ErrAK)
	}
	switch p.NameAlg {
	case tpm2.TPMAlgSHA256, tpm2.TPMAlgSHA384, tpm2.TPMAlgSHA512:
	default:
		return fmt.Errorf("%w: name algorithm %v (want SHA-256 or stronger)", ErrAK, p.NameAlg)
	}
	switch p.Type {
	case tpm2.TPMAlgRSA:
		d, err := p.Parameters.RSADetail()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrAK, err)
		}
		if d.KeyBits < 2048 {
			return fmt.Errorf("%w: RSA key of %d bits (want 2048 or more)", ErrAK, d.KeyBits)
		}
		switch d.Scheme.Scheme {
		case tpm2.TPMAlgRSASSA, tpm2.TPMAlgRSAPSS:
		default:
			return fmt.Errorf("%w: RSA scheme %v (want RSASSA or RSAPSS)", ErrAK, d.Scheme.Scheme)
		}
	case tpm2.TPMAlgECC:
		d, err := p.Parameters.ECCDetail()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrAK, err)
		}
		switch d.CurveID {
		case tpm2.TPMECCNistP256, tpm2.TPMECCNistP384, tpm2.TPMECCNistP521:
		default:
			return fmt.Errorf("%w: ECC curve %v (want NIST P-256, P-384 or P-521)", ErrAK, d.CurveID)
		}
		if d.Scheme.Scheme != tpm2.TPMAlgECDSA {
			return fmt.Errorf("%w: ECC scheme %v (want ECDSA)", ErrAK, d.Scheme.Scheme)
		}
	default:
		return fmt.Errorf("%w: key type %v", ErrAK, p.Type)
	}
	return nil
}

// Name returns the TPM name of a public area (TPM 2.0 Part 1 §16): the
// name algorithm's id followed by the hash of the public area. It is what
// MakeCredential binds the secret to.
func Name(p *tpm2.TPMTPublic) (name []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			name, err = nil, fmt.Errorf("enroll: name: go-tpm panicked: %v", r)
		}
	}()
	n, err := tpm2.ObjectName(p)
	if err != nil {
		return nil, fmt.Errorf("enroll: name: %w", err)
	}
	return n.Buffer, nil
}
