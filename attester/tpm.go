package attester

import (
	"github.com/google/go-tpm/tpm2"

	"github.com/imago-ima/imago/enroll"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/quote"
)

// TPM is what the attester needs of a TPM.
type TPM interface {
	// Endorsement returns the endorsement key the credential exchange
	// uses, with its certificate and chain where the TPM has them.
	Endorsement() (*Endorsement, error)
	// AKPublic returns the attestation key's public area.
	AKPublic() (*tpm2.TPMTPublic, error)
	// Activate runs TPM2_ActivateCredential with the AK and the EK and
	// returns the secret.
	Activate(c *enroll.Credential) ([]byte, error)
	// Banks returns the allocated PCR banks.
	Banks() ([]pcr.Bank, error)
	// Quote quotes sel with nonce under the AK and returns the quote and
	// the values of the quoted PCRs, read so that they match the quote.
	Quote(nonce []byte, sel quote.Selection) (*Quoted, error)
}

// Endorsement is an EK and what certifies it.
type Endorsement struct {
	Public      tpm2.TPMTPublic
	Certificate []byte   // DER, nil if the TPM has none
	Chain       [][]byte // DER intermediates
	// CertIndex is the NV index the certificate came from (0 if none).
	CertIndex tpm2.TPMHandle
}

// Quoted is a quote with the PCR values it covers.
type Quoted struct {
	Attest, Signature []byte
	PCRs              pcr.Set
}
