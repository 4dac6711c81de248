package attest

import (
	"github.com/imago-ima/imago/enroll"
	"github.com/imago-ima/imago/quote"
)

// EnrollRequest is the attester's first enrollment message: its endorsement
// key, the EK certificate and chain read from TPM NV, and a new attestation
// key.
type EnrollRequest struct {
	// EKPublic is the EK's TPMT_PUBLIC.
	EKPublic []byte `json:"ek_public"`
	// EKCertificate is the DER EK certificate; empty when the TPM has none
	// (accepted only for a node added with --allow-ek-without-cert).
	EKCertificate []byte `json:"ek_certificate,omitempty"`
	// EKChain are DER intermediate certificates from NV
	// 0x01c00100-0x01c001ff.
	EKChain [][]byte `json:"ek_chain,omitempty"`
	// AKPublic is the AK's TPMT_PUBLIC.
	AKPublic []byte `json:"ak_public"`
}

// EnrollChallenge is the verifier's answer: a credential only the TPM that
// holds both keys can activate.
type EnrollChallenge struct {
	Credential enroll.Credential `json:"credential"`
	// Token names this enrollment attempt in ActivateRequest.
	Token string `json:"token"`
	// Expires is when the verifier stops honouring the token (RFC 3339).
	Expires string `json:"expires"`
}

// ActivateRequest returns the secret TPM2_ActivateCredential recovered.
type ActivateRequest struct {
	Token  string `json:"token"`
	Secret []byte `json:"secret"`
}

// MaxEnrollSize bounds an encoded EnrollRequest.
const MaxEnrollSize = 256 << 10

// DecodeEnrollRequest decodes and bounds an EnrollRequest. The keys and
// certificates are only bounded here; enroll checks what they say.
func DecodeEnrollRequest(data []byte) (*EnrollRequest, error) {
	const msg = "enroll request"
	var r EnrollRequest
	if err := decode(msg, data, MaxEnrollSize, &r); err != nil {
		return nil, err
	}
	if err := checkLen(msg, "ek_public", r.EKPublic, 1, quote.MaxPublicSize); err != nil {
		return nil, err
	}
	if err := checkLen(msg, "ak_public", r.AKPublic, 1, quote.MaxPublicSize); err != nil {
		return nil, err
	}
	if err := checkLen(msg, "ek_certificate", r.EKCertificate, 0, enroll.MaxCertSize); err != nil {
		return nil, err
	}
	if len(r.EKChain) > enroll.MaxChain {
		return nil, formatErr(msg, "ek_chain", "%d certificates, more than %d", len(r.EKChain), enroll.MaxChain)
	}
	for _, c := range r.EKChain {
		if err := checkLen(msg, "ek_chain", c, 1, enroll.MaxCertSize); err != nil {
			return nil, err
		}
	}
	return &r, nil
}

// DecodeActivateRequest decodes and bounds an ActivateRequest.
func DecodeActivateRequest(data []byte) (*ActivateRequest, error) {
	const msg = "activate request"
	var r ActivateRequest
	if err := decode(msg, data, 4<<10, &r); err != nil {
		return nil, err
	}
	if err := checkToken(msg, r.Token); err != nil {
		return nil, err
	}
	if err := checkLen(msg, "secret", r.Secret, 1, enroll.MaxSecretSize); err != nil {
		return nil, err
	}
	return &r, nil
}
