package enroll

import (
	"fmt"
	"io"

	"github.com/google/go-tpm/tpm2"
)

// Credential is TPM2_MakeCredential's output (TPM 2.0 Part 3 §12.6): what
// the attester gives TPM2_ActivateCredential.
type Credential struct {
	// IDObject is the TPM2B_ID_OBJECT's contents: the integrity HMAC and
	// the encrypted secret.
	IDObject []byte `json:"id_object"`
	// EncSecret is the seed encrypted to the EK (RSA-OAEP) or the
	// ephemeral ECDH point (ECC).
	EncSecret []byte `json:"encrypted_secret"`
}

// MaxSecretSize bounds a credential's secret (a TPM2B_DIGEST).
const MaxSecretSize = 64

// NewCredential wraps secret so that only a TPM holding the endorsement key
// ek and a loaded object named akName can recover it. ek must be a storage
// (restricted decryption) key: an RSA or ECC EK.
func NewCredential(rand io.Reader, ek *tpm2.TPMTPublic, akName, secret []byte) (c *Credential, err error) {
	if len(secret) == 0 || len(secret) > MaxSecretSize {
		return nil, fmt.Errorf("enroll: credential secret of %d bytes (want 1 to %d)", len(secret), MaxSecretSize)
	}
	if !ek.ObjectAttributes.Restricted || !ek.ObjectAttributes.Decrypt {
		return nil, fmt.Errorf("enroll: the endorsement key is not a restricted decryption key")
	}
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("enroll: make credential: go-tpm panicked: %v", r)
		}
	}()
	kem, err := tpm2.ImportEncapsulationKey(ek)
	if err != nil {
		return nil, fmt.Errorf("enroll: endorsement key: %w", err)
	}
	id, enc, err := tpm2.CreateCredential(rand, kem, akName, secret)
	if err != nil {
		return nil, fmt.Errorf("enroll: make credential: %w", err)
	}
	return &Credential{IDObject: id, EncSecret: enc}, nil
}
