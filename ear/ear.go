package ear

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/imago-ima/imago/attest"
)

// Profile is the EAR profile (draft-ietf-rats-ear §3.1).
const Profile = "tag:github.com,2023:veraison/ear"

// Submodule names the appraisal of the IMA list and TPM.
const Submodule = "imago-ima"

// Status values (draft-ietf-rats-ear §3.2).
const (
	StatusAffirming       = "affirming"
	StatusWarning         = "warning"
	StatusContraindicated = "contraindicated"
	StatusNone            = "none"
)

// Claims is the EAR claim set imago issues.
type Claims struct {
	Profile    string               `json:"eat_profile"`
	IssuedAt   int64                `json:"iat"`
	VerifierID VerifierID           `json:"ear.verifier-id"`
	Nonce      string               `json:"eat_nonce,omitempty"`
	Subject    string               `json:"sub"`
	Submods    map[string]Appraisal `json:"submods"`
}

// VerifierID identifies the verifier software.
type VerifierID struct {
	Developer string `json:"developer"`
	Build     string `json:"build"`
}

// Appraisal is one submodule's result.
type Appraisal struct {
	Status   string           `json:"ear.status"`
	Vector   map[string]int   `json:"ear.trustworthiness-vector"`
	PolicyID string           `json:"ear.appraisal-policy-id,omitempty"`
	Failures []attest.Failure `json:"imago.failures,omitempty"`
	Round    uint64           `json:"imago.round"`
	Entries  uint64           `json:"imago.entries"`
}

// Issuer signs EARs with an ECDSA key (ES256, ES384 or ES512 by curve).
type Issuer struct {
	signer jose.Signer
	pub    jose.JSONWebKey
	build  string
}

// NewIssuer makes an issuer; build names the imago build in
// ear.verifier-id.
func NewIssuer(key *ecdsa.PrivateKey, build string) (*Issuer, error) {
	alg := jose.ES256
	switch key.Curve.Params().BitSize {
	case 384:
		alg = jose.ES384
	case 521:
		alg = jose.ES512
	}
	kid, err := KeyID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("ear: %w", err)
	}
	return &Issuer{signer: s, pub: jose.JSONWebKey{Key: &key.PublicKey, KeyID: kid, Algorithm: string(alg), Use: "sig"}, build: build}, nil
}

// KeyID is the hex sha256 of the key's JWK thumbprint input.
func KeyID(pub crypto.PublicKey) (string, error) {
	t, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("ear: key id: %w", err)
	}
	return hex.EncodeToString(t[:8]), nil
}

// JWKS returns the public key set relying parties verify with.
func (i *Issuer) JWKS() jose.JSONWebKeySet { return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{i.pub}} }

// Input is what a round says, for the vector.
type Input struct {
	Node      string
	Result    *attest.Result
	PolicyID  string
	Authentic bool
	// BootFailed: the firmware log did not replay to the quote.
	BootFailed bool
	Time       time.Time
	Nonce      []byte
}

// Issue signs the EAR for one round.
func (i *Issuer) Issue(in Input) (string, error) {
	c := Build(in, i.build)
	tok, err := jwt.Signed(i.signer).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("ear: sign: %w", err)
	}
	return tok, nil
}

// Build makes the claim set for a round.
func Build(in Input, build string) Claims {
	r := in.Result
	status := StatusAffirming
	if r.Verdict != attest.VerdictPass || r.State == attest.StateFail {
		status = StatusContraindicated
	}
	vec := map[string]int{"instance-identity": 2, "hardware": 2, "executables": 2, "file-system": 2, "configuration": 2}
	if !in.Authentic {
		vec = map[string]int{"instance-identity": 96}
	} else {
		for _, f := range r.Failures {
			if f.Entry >= 0 || f.ID == "ima.pcr_mismatch" {
				vec["executables"], vec["file-system"] = 33, 33
			}
		}
		if in.BootFailed {
			vec["configuration"] = 36
		}
	}
	c := Claims{
		Profile:    Profile,
		IssuedAt:   in.Time.Unix(),
		VerifierID: VerifierID{Developer: "imago", Build: build},
		Subject:    in.Node,
		Submods: map[string]Appraisal{Submodule: {
			Status: status, Vector: vec, PolicyID: "policy:runtime/" + in.PolicyID,
			Failures: r.Failures, Round: r.Round, Entries: r.Entries,
		}},
	}
	if len(in.Nonce) > 0 {
		sum := sha256.Sum256(in.Nonce)
		c.Nonce = hex.EncodeToString(sum[:16])
	}
	return c
}

// Verify checks a token's signature against a key set and returns its
// claims.
func Verify(token string, keys jose.JSONWebKeySet) (*Claims, error) {
	t, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512})
	if err != nil {
		return nil, fmt.Errorf("ear: %w", err)
	}
	if len(t.Headers) != 1 {
		return nil, fmt.Errorf("ear: %d signatures, want 1", len(t.Headers))
	}
	ks := keys.Key(t.Headers[0].KeyID)
	if len(ks) == 0 {
		return nil, fmt.Errorf("ear: unknown key id %q", t.Headers[0].KeyID)
	}
	var c Claims
	if err := t.Claims(ks[0].Key, &c); err != nil {
		return nil, fmt.Errorf("ear: %w", err)
	}
	return &c, nil
}
