package quote

import (
	"bytes"
	"encoding/binary"

	"github.com/google/go-tpm/tpm2"
)

// parseDirect decodes the common forms of a quote without go-tpm's
// reflective decoder, which costs as much as verifying the signature: a
// TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE (TPM 2.0 Part 2 §10.12.12: magic,
// type, qualifiedSigner, extraData, clockInfo, firmwareVersion,
// TPMS_QUOTE_INFO) and an RSASSA, RSAPSS or ECDSA TPMT_SIGNATURE (§11.3.4),
// each exactly filling its bytes. It returns ok false for anything else,
// well-formed or not: Parse then decodes with go-tpm, which gives the error.
// What it decodes, it decodes as go-tpm does (FuzzParseDirect holds them to
// the same values).
func parseDirect(attest, sig []byte) (q *Quote, ok bool) {
	r := reader{b: attest}
	if r.u32() != uint32(tpm2.TPMGeneratedValue) || r.u16() != uint16(tpm2.TPMSTAttestQuote) {
		return nil, false
	}
	signer := r.sized()
	nonce := r.sized()
	var clock ClockInfo
	clock.Clock = r.u64()
	clock.ResetCount = r.u32()
	clock.RestartCount = r.u32()
	clock.Safe = r.u8() != 0
	firmware := r.u64()
	n := r.u32()
	if r.bad || n > MaxBanks || len(nonce) > MaxNonceSize {
		return nil, false
	}
	var sel tpm2.TPMLPCRSelection
	if n > 0 {
		sel.PCRSelections = make([]tpm2.TPMSPCRSelection, n)
	}
	for i := range sel.PCRSelections {
		sel.PCRSelections[i].Hash = tpm2.TPMIAlgHash(r.u16())
		sel.PCRSelections[i].PCRSelect = r.sized8()
	}
	digest := r.sized()
	if r.bad || r.i != len(attest) {
		return nil, false
	}
	selection, err := selectionFromTPM(sel)
	if err != nil {
		return nil, false
	}
	s, ok := parseSignature(sig)
	if !ok {
		return nil, false
	}
	return &Quote{
		Attest:          bytes.Clone(attest),
		Signer:          bytes.Clone(signer),
		Nonce:           bytes.Clone(nonce),
		Clock:           clock,
		FirmwareVersion: firmware,
		Selection:       selection,
		PCRDigest:       bytes.Clone(digest),
		Signature:       s,
	}, true
}

// parseSignature decodes an RSASSA, RSAPSS or ECDSA TPMT_SIGNATURE that
// fills sig exactly.
func parseSignature(sig []byte) (tpm2.TPMTSignature, bool) {
	r := reader{b: sig}
	alg := tpm2.TPMAlgID(r.u16())
	hash := tpm2.TPMIAlgHash(r.u16())
	var s tpm2.TPMTSignature
	switch alg {
	case tpm2.TPMAlgRSASSA, tpm2.TPMAlgRSAPSS:
		b := bytes.Clone(r.sized())
		s = tpm2.TPMTSignature{SigAlg: alg, Signature: tpm2.NewTPMUSignature(alg, &tpm2.TPMSSignatureRSA{
			Hash: hash, Sig: tpm2.TPM2BPublicKeyRSA{Buffer: b}})}
	case tpm2.TPMAlgECDSA:
		rr, ss := bytes.Clone(r.sized()), bytes.Clone(r.sized())
		s = tpm2.TPMTSignature{SigAlg: alg, Signature: tpm2.NewTPMUSignature(alg, &tpm2.TPMSSignatureECC{
			Hash: hash, SignatureR: tpm2.TPM2BECCParameter{Buffer: rr}, SignatureS: tpm2.TPM2BECCParameter{Buffer: ss}})}
	default:
		return tpm2.TPMTSignature{}, false
	}
	if r.bad || r.i != len(sig) {
		return tpm2.TPMTSignature{}, false
	}
	return s, true
}

// reader reads big-endian TPM fields from b; a read past the end sets bad
// and yields zeros.
type reader struct {
	b   []byte
	i   int
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || n > len(r.b)-r.i {
		r.bad = true
		return nil
	}
	v := r.b[r.i : r.i+n : r.i+n]
	r.i += n
	return v
}

func (r *reader) u8() byte {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// sized reads a TPM2B: a 16-bit size and that many bytes.
func (r *reader) sized() []byte { return r.take(int(r.u16())) }

// sized8 reads an 8-bit size and that many bytes (a PCR bitmap).
func (r *reader) sized8() []byte { return r.take(int(r.u8())) }
