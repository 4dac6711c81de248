package quote

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"

	"github.com/google/go-tpm/tpm2"

	"github.com/imago-ima/imago/pcr"
)

// Errors of the checks. Each check's error wraps one of them.
var (
	// ErrSignature: the attestation key did not sign these bytes.
	ErrSignature = errors.New("quote: signature does not verify with the attestation key")
	// ErrNonce: the qualifying data is not the expected nonce.
	ErrNonce = errors.New("quote: qualifying data is not the verifier's nonce")
	// ErrPCRDigest: the PCR values given do not hash to the quoted digest.
	ErrPCRDigest = errors.New("quote: PCR digest does not match the PCR values")
	// ErrSelection: the quote does not select what was asked.
	ErrSelection = errors.New("quote: PCR selection is not the one asked for")
)

// CheckSignature checks that ak signed the attestation: the signature's
// scheme is one the key can make (RSASSA or RSAPSS for RSA, ECDSA for ECC),
// over the attestation's hash under the signature's hash algorithm, which
// must be SHA-256 or stronger.
func (q *Quote) CheckSignature(ak *tpm2.TPMTPublic) error {
	pub, err := PublicKey(ak)
	if err != nil {
		return err
	}
	return q.CheckSignatureKey(pub)
}

// CheckSignatureKey is CheckSignature with the AK's key already converted
// by PublicKey (a verifier keeps it per node).
func (q *Quote) CheckSignatureKey(pub crypto.PublicKey) error {
	return checkSig(pub, q.Signature, q.Attest)
}

// PublicKey returns the crypto public key of a TPMT_PUBLIC (RSA or ECC),
// turning a panic in go-tpm into an error.
func PublicKey(p *tpm2.TPMTPublic) (k crypto.PublicKey, err error) {
	defer func() {
		if r := recover(); r != nil {
			k, err = nil, fmt.Errorf("quote: public key: go-tpm panicked: %v", r)
		}
	}()
	k, err = tpm2.Pub(*p)
	if err != nil {
		return nil, fmt.Errorf("quote: public key: %w", err)
	}
	return k, nil
}

// SignatureHash returns the hash algorithm the signature names.
func (q *Quote) SignatureHash() (pcr.Bank, error) {
	h, err := sigHash(q.Signature)
	return pcr.Bank(h), err
}

func sigHash(s tpm2.TPMTSignature) (tpm2.TPMIAlgHash, error) {
	switch s.SigAlg {
	case tpm2.TPMAlgRSASSA:
		r, err := s.Signature.RSASSA()
		if err != nil {
			return 0, err
		}
		return r.Hash, nil
	case tpm2.TPMAlgRSAPSS:
		r, err := s.Signature.RSAPSS()
		if err != nil {
			return 0, err
		}
		return r.Hash, nil
	case tpm2.TPMAlgECDSA:
		e, err := s.Signature.ECDSA()
		if err != nil {
			return 0, err
		}
		return e.Hash, nil
	}
	return 0, fmt.Errorf("quote: signature scheme %v not supported", s.SigAlg)
}

func checkSig(pub crypto.PublicKey, s tpm2.TPMTSignature, msg []byte) error {
	halg, err := sigHash(s)
	if err != nil {
		return err
	}
	var h crypto.Hash
	switch halg {
	case tpm2.TPMAlgSHA256:
		h = crypto.SHA256
	case tpm2.TPMAlgSHA384:
		h = crypto.SHA384
	case tpm2.TPMAlgSHA512:
		h = crypto.SHA512
	default:
		return fmt.Errorf("%w: hash %v not accepted (SHA-256 or stronger)", ErrSignature, halg)
	}
	hh := h.New()
	hh.Write(msg)
	digest := hh.Sum(nil)
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch s.SigAlg {
		case tpm2.TPMAlgRSASSA:
			r, _ := s.Signature.RSASSA()
			if rsa.VerifyPKCS1v15(k, h, digest, r.Sig.Buffer) != nil {
				return ErrSignature
			}
			return nil
		case tpm2.TPMAlgRSAPSS:
			r, _ := s.Signature.RSAPSS()
			if rsa.VerifyPSS(k, h, digest, r.Sig.Buffer, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) != nil {
				return ErrSignature
			}
			return nil
		}
	case *ecdsa.PublicKey:
		if s.SigAlg == tpm2.TPMAlgECDSA {
			e, _ := s.Signature.ECDSA()
			r := new(big.Int).SetBytes(e.SignatureR.Buffer)
			ss := new(big.Int).SetBytes(e.SignatureS.Buffer)
			if !ecdsa.Verify(k, digest, r, ss) {
				return ErrSignature
			}
			return nil
		}
	}
	return fmt.Errorf("%w: a %v signature cannot come from a %T key", ErrSignature, s.SigAlg, pub)
}

// CheckNonce checks the qualifying data against the verifier's nonce.
func (q *Quote) CheckNonce(nonce []byte) error {
	if len(nonce) == 0 || subtle.ConstantTimeCompare(q.Nonce, nonce) != 1 {
		return ErrNonce
	}
	return nil
}

// CheckSelection checks that the quote selects exactly want.
func (q *Quote) CheckSelection(want Selection) error {
	if !q.Selection.Equal(want) {
		return fmt.Errorf("%w: quoted %v, asked %v", ErrSelection, q.Selection, want)
	}
	return nil
}

// CheckPCRs checks that values, for every quoted PCR, hash to the quoted
// PCR digest under the signature's hash algorithm. Call it after
// CheckSignature: the signature fixes the hash algorithm.
func (q *Quote) CheckPCRs(values pcr.Set) error {
	h, err := q.SignatureHash()
	if err != nil {
		return err
	}
	d, err := Digest(h, q.Selection, values)
	if err != nil {
		return err
	}
	if !bytes.Equal(d, q.PCRDigest) {
		return ErrPCRDigest
	}
	return nil
}
