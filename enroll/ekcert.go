package enroll

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"
)

// Limits on certificates from the attester.
const (
	// MaxCertSize bounds one DER certificate (EK certificates are about 1
	// KiB; TPM NV indices hold at most a few KiB).
	MaxCertSize = 16 << 10
	// MaxChain bounds the intermediate certificates an attester sends.
	MaxChain = 8
)

// ErrEKCertificate marks an EK certificate that does not make the EK
// genuine: it does not parse, does not chain to the roots, or certifies
// another key.
var ErrEKCertificate = errors.New("enroll: EK certificate not trusted")

// oidSubjectAltName is id-ce-subjectAltName (RFC 5280 §4.2.1.6).
var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// Roots are the certificates EK certificates must chain to: self-signed
// ones are trust anchors, others intermediates that may complete a chain.
type Roots struct {
	roots, inter *x509.CertPool
	n            int
}

// NewRoots sorts certs into anchors (self-signed) and intermediates.
func NewRoots(certs []*x509.Certificate) *Roots {
	r := &Roots{roots: x509.NewCertPool(), inter: x509.NewCertPool()}
	for _, c := range certs {
		if bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil {
			r.roots.AddCert(c)
			r.n++
		} else {
			r.inter.AddCert(c)
		}
	}
	return r
}

// Len returns the number of trust anchors.
func (r *Roots) Len() int {
	if r == nil {
		return 0
	}
	return r.n
}

// CheckEKCertificate parses the DER EK certificate cert and the
// attester's intermediates chain, verifies the chain to the roots (at
// opts.CurrentTime; other fields of opts are set here), and checks that
// the certificate's public key is ek's. It returns the parsed certificate.
// The error wraps ErrEKCertificate.
func (r *Roots) CheckEKCertificate(ek *tpm2.TPMTPublic, cert []byte, chain [][]byte, opts x509.VerifyOptions) (*x509.Certificate, error) {
	if r == nil || r.n == 0 {
		return nil, fmt.Errorf("%w: no EK roots configured", ErrEKCertificate)
	}
	c, err := parseCert(cert)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEKCertificate, err)
	}
	if len(chain) > MaxChain {
		return nil, fmt.Errorf("%w: %d chain certificates, more than %d", ErrEKCertificate, len(chain), MaxChain)
	}
	inter := r.inter.Clone()
	for i, d := range chain {
		ic, err := parseCert(d)
		if err != nil {
			return nil, fmt.Errorf("%w: chain certificate %d: %v", ErrEKCertificate, i, err)
		}
		inter.AddCert(ic)
	}
	opts.Roots, opts.Intermediates = r.roots, inter
	// EK certificates carry the TCG EK purpose (2.23.133.8.1), not a
	// web PKI one.
	opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
	if _, err := c.Verify(opts); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEKCertificate, err)
	}
	if err := samePublicKey(ek, c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEKCertificate, err)
	}
	return c, nil
}

// parseCert parses one DER certificate and accepts a critical subject
// alternative name: the TCG EK profile puts the TPM manufacturer, model
// and version there as a directoryName and swtpm marks it critical, which
// Go's x509 reports as unhandled.
func parseCert(der []byte) (*x509.Certificate, error) {
	if len(der) == 0 {
		return nil, fmt.Errorf("empty certificate")
	}
	if len(der) > MaxCertSize {
		return nil, fmt.Errorf("certificate of %d bytes, more than %d", len(der), MaxCertSize)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	c.UnhandledCriticalExtensions = slices.DeleteFunc(c.UnhandledCriticalExtensions, func(o asn1.ObjectIdentifier) bool {
		return o.Equal(oidSubjectAltName)
	})
	return c, nil
}

// samePublicKey checks that the certificate certifies the key in ek.
func samePublicKey(ek *tpm2.TPMTPublic, c *x509.Certificate) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("EK public area: go-tpm panicked: %v", r)
		}
	}()
	k, err := tpm2.Pub(*ek)
	if err != nil {
		return fmt.Errorf("EK public area: %w", err)
	}
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k.Equal(c.PublicKey) {
			return nil
		}
	case *ecdsa.PublicKey:
		if k.Equal(c.PublicKey) {
			return nil
		}
	default:
		return fmt.Errorf("EK of type %T", k)
	}
	return fmt.Errorf("the certificate certifies another key than the EK sent")
}
