package attester

import (
	"crypto"

	"crypto/x509"
	"errors"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/imago-ima/imago/enroll"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/quote"
	"github.com/imago-ima/imago/tpm"
)

// Device is a real TPM (a device node, swtpm, the simulator) as the
// attester uses it. It keeps the AK loaded (a transient object; Close
// flushes it) and finds the EK once.
type Device struct {
	tp *tpm.TPM
	t  transport.TPM

	ak     tpm2.TPMHandle
	akName tpm2.TPM2BName
	akPub  *tpm2.TPMTPublic

	ek *deviceEK
}

type deviceEK struct {
	Endorsement
	handle    tpm2.TPMHandle
	name      tpm2.TPM2BName
	transient bool
}

// NewDevice uses an open TPM. It sends no command yet.
func NewDevice(tp *tpm.TPM) *Device {
	return &Device{tp: tp, t: tp.Transport()}
}

// Close flushes the transient objects the Device loaded. It does not close
// the TPM.
func (d *Device) Close() error {
	var errs []error
	if d.ak != 0 {
		_, err := tpm2.FlushContext{FlushHandle: d.ak}.Execute(d.t)
		errs = append(errs, err)
		d.ak = 0
	}
	if d.ek != nil && d.ek.transient {
		_, err := tpm2.FlushContext{FlushHandle: d.ek.handle}.Execute(d.t)
		errs = append(errs, err)
	}
	d.ek = nil
	return errors.Join(errs...)
}

// akTemplate is imago's AK: an ECC NIST P-256 restricted signing key with
// ECDSA-SHA256, bound to the TPM, created as a primary in the endorsement
// hierarchy. A primary key is derived from the hierarchy's seed and the
// template, so every CreatePrimary returns the same key until the
// endorsement seed changes. The endorsement hierarchy matters: a TPM
// obfuscates resetCount, restartCount and firmwareVersion in attestations
// signed by keys of the owner hierarchy (TPM 2.0 Part 1 §36.6, XOR with a
// per-key value), which hides a reboot's counter from the verifier.
var akTemplate = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgECC,
	NameAlg: tpm2.TPMAlgSHA256,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		Restricted:          true,
		SignEncrypt:         true,
	},
	Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		Scheme: tpm2.TPMTECCScheme{
			Scheme:  tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
		},
		CurveID: tpm2.TPMECCNistP256,
	}),
	Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		// The unique field makes this AK differ from other endorsement primaries
		// made from the same template by other software.
		X: tpm2.TPM2BECCParameter{Buffer: []byte("imago attestation key")},
	}),
}

// AKTemplate returns the template of imago's AK (the Unique field aside,
// the public area of every imago AK).
func AKTemplate() tpm2.TPMTPublic { return akTemplate }

// loadAK creates (that is, re-derives) the AK if it is not loaded.
func (d *Device) loadAK() error {
	if d.ak != 0 {
		return nil
	}
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(akTemplate),
	}.Execute(d.t)
	if err != nil {
		return fmt.Errorf("attester: create AK: %w", err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}.Execute(d.t)
		return fmt.Errorf("attester: create AK: %w", err)
	}
	d.ak, d.akName, d.akPub = rsp.ObjectHandle, rsp.Name, pub
	return nil
}

// AKPublic implements TPM.
func (d *Device) AKPublic() (*tpm2.TPMTPublic, error) {
	if err := d.loadAK(); err != nil {
		return nil, err
	}
	return d.akPub, nil
}

// Banks implements TPM.
func (d *Device) Banks() ([]pcr.Bank, error) { return d.tp.Banks() }

// maxQuoteTries bounds quoting again when the PCRs changed between the
// quote and reading them (an extend in between).
const maxQuoteTries = 8

// Quote implements TPM: TPM2_Quote with the AK's own scheme, then
// TPM2_PCR_Read of the selection; if the values read do not hash to the
// quoted digest (an extend came in between), it quotes again.
func (d *Device) Quote(nonce []byte, sel quote.Selection) (*Quoted, error) {
	if err := d.loadAK(); err != nil {
		return nil, err
	}
	if err := sel.Check(); err != nil {
		return nil, err
	}
	for range maxQuoteTries {
		rsp, err := tpm2.Quote{
			SignHandle:     tpm2.AuthHandle{Handle: d.ak, Name: d.akName, Auth: tpm2.PasswordAuth(nil)},
			QualifyingData: tpm2.TPM2BData{Buffer: nonce},
			InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
			PCRSelect:      sel.TPM(),
		}.Execute(d.t)
		if err != nil {
			return nil, fmt.Errorf("attester: quote: %w", err)
		}
		attest := rsp.Quoted.Bytes()
		sig := tpm2.Marshal(rsp.Signature)
		q, err := quote.Parse(attest, sig)
		if err != nil {
			return nil, fmt.Errorf("attester: the TPM's own quote: %w", err)
		}
		values, err := d.readSelected(sel)
		if err != nil {
			return nil, err
		}
		if err := q.CheckPCRs(values); errors.Is(err, quote.ErrPCRDigest) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("attester: %w", err)
		}
		return &Quoted{Attest: attest, Signature: sig, PCRs: values}, nil
	}
	return nil, fmt.Errorf("attester: quote: PCRs kept changing between quote and read (%d tries)", maxQuoteTries)
}

// readSelected reads the selected PCRs in one consistent snapshot (package
// tpm restarts a multi-command read that an extend interleaved).
func (d *Device) readSelected(sel quote.Selection) (pcr.Set, error) {
	var idx []int
	for _, b := range sel {
		for _, i := range b.PCRs {
			if !slices.Contains(idx, i) {
				idx = append(idx, i)
			}
		}
	}
	all, err := d.tp.ReadPCRs(sel.Banks(), idx)
	if err != nil {
		return nil, fmt.Errorf("attester: read quoted PCRs: %w", err)
	}
	out := make(pcr.Set)
	for _, b := range sel {
		for _, i := range b.PCRs {
			v, _ := all.Get(b.Bank, i)
			out.Put(b.Bank, i, v)
		}
	}
	return out, nil
}

// Activate implements TPM: TPM2_ActivateCredential with the AK as the
// activated object and the EK as the decryption key, authorised by a
// policy session that ran PolicySecret(TPM_RH_ENDORSEMENT), the TCG EK
// templates' policy.
func (d *Device) Activate(c *enroll.Credential) ([]byte, error) {
	if err := d.loadAK(); err != nil {
		return nil, err
	}
	ek, err := d.endorsement()
	if err != nil {
		return nil, err
	}
	rsp, err := tpm2.ActivateCredential{
		ActivateHandle: tpm2.AuthHandle{Handle: d.ak, Name: d.akName, Auth: tpm2.PasswordAuth(nil)},
		KeyHandle: tpm2.AuthHandle{
			Handle: ek.handle,
			Name:   ek.name,
			Auth:   tpm2.Policy(ek.Public.NameAlg, 16, ekPolicy),
		},
		CredentialBlob: tpm2.TPM2BIDObject{Buffer: c.IDObject},
		Secret:         tpm2.TPM2BEncryptedSecret{Buffer: c.EncSecret},
	}.Execute(d.t)
	if err != nil {
		return nil, fmt.Errorf("attester: activate credential: %w", err)
	}
	return rsp.CertInfo.Buffer, nil
}

// ekPolicy is PolicyA of the TCG EK Credential Profile: PolicySecret with
// the endorsement hierarchy (empty auth).
func ekPolicy(t transport.TPM, h tpm2.TPMISHPolicy, nonceTPM tpm2.TPM2BNonce) error {
	_, err := tpm2.PolicySecret{
		AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		PolicySession: h,
		NonceTPM:      nonceTPM,
	}.Execute(t)
	return err
}

// Endorsement implements TPM.
func (d *Device) Endorsement() (*Endorsement, error) {
	ek, err := d.endorsement()
	if err != nil {
		return nil, err
	}
	e := ek.Endorsement
	return &e, nil
}

func (d *Device) endorsement() (*deviceEK, error) {
	if d.ek != nil {
		return d.ek, nil
	}
	ek, err := findEK(d.t)
	if err != nil {
		return nil, err
	}
	d.ek = ek
	return ek, nil
}

// findEK picks the endorsement key: the first EK certificate in NV (low
// range RSA, low range ECC, then the high range) whose key is a persistent
// EK or can be created from the matching TCG template; with no
// certificate, the persistent RSA EK at 0x81010001 or one created from the
// RSA template.
func findEK(t transport.TPM) (*deviceEK, error) {
	certs, err := readEKCertificates(t)
	if err != nil {
		return nil, err
	}
	chain, err := readEKChain(t)
	if err != nil {
		return nil, err
	}
	persistent, err := persistentEKs(t)
	if err != nil {
		return nil, err
	}
	for _, c := range certs {
		cert, err := x509.ParseCertificate(c.der)
		if err != nil {
			continue // a broken certificate cannot pick a key; the verifier sees the next
		}
		for _, p := range persistent {
			if samePub(p.pub, cert) {
				return &deviceEK{
					Endorsement: Endorsement{Public: *p.pub, Certificate: c.der, Chain: chain, CertIndex: c.index},
					handle:      p.handle, name: p.name,
				}, nil
			}
		}
		if tmpl, ok := lowRangeTemplates[c.index]; ok {
			ek, err := createEK(t, tmpl)
			if err != nil {
				return nil, err
			}
			if samePub(&ek.Public, cert) {
				ek.Certificate, ek.Chain, ek.CertIndex = c.der, chain, c.index
				return ek, nil
			}
			tpm2.FlushContext{FlushHandle: ek.handle}.Execute(t)
		}
	}
	for _, p := range persistent {
		if p.handle == ekRSAHandle {
			return &deviceEK{Endorsement: Endorsement{Public: *p.pub}, handle: p.handle, name: p.name}, nil
		}
	}
	return createEK(t, tpm2.RSAEKTemplate)
}

func createEK(t transport.TPM, tmpl tpm2.TPMTPublic) (*deviceEK, error) {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tmpl),
	}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("attester: create EK: %w", err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}.Execute(t)
		return nil, fmt.Errorf("attester: create EK: %w", err)
	}
	return &deviceEK{Endorsement: Endorsement{Public: *pub}, handle: rsp.ObjectHandle, name: rsp.Name, transient: true}, nil
}

// samePub reports whether cert certifies the key in pub.
func samePub(pub *tpm2.TPMTPublic, cert *x509.Certificate) bool {
	k, err := tpm2.Pub(*pub)
	if err != nil {
		return false
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := k.(equaler)
	return ok && e.Equal(cert.PublicKey)
}

// Persistent EK handles (TCG EK Credential Profile §2.2.1.4; the
// persistent EK range is 0x81010000-0x810100FF).
const (
	ekRSAHandle      tpm2.TPMHandle = 0x81010001
	persistentEKBase tpm2.TPMHandle = 0x81010000
	persistentEKLast tpm2.TPMHandle = 0x810100ff
)

type persistentKey struct {
	handle tpm2.TPMHandle
	pub    *tpm2.TPMTPublic
	name   tpm2.TPM2BName
}

// persistentEKs reads the public areas of the persistent handles in the
// EK range that are restricted decryption keys.
func persistentEKs(t transport.TPM) ([]persistentKey, error) {
	handles, err := listHandles(t, persistentEKBase, persistentEKLast)
	if err != nil {
		return nil, err
	}
	var out []persistentKey
	for _, h := range handles {
		rsp, err := tpm2.ReadPublic{ObjectHandle: h}.Execute(t)
		if err != nil {
			continue
		}
		pub, err := rsp.OutPublic.Contents()
		if err != nil || !pub.ObjectAttributes.Restricted || !pub.ObjectAttributes.Decrypt {
			continue
		}
		out = append(out, persistentKey{handle: h, pub: pub, name: rsp.Name})
	}
	return out, nil
}

// maxHandles bounds one TPM_CAP_HANDLES listing.
const maxHandles = 256

// listHandles lists the handles in [first, last] with
// TPM2_GetCapability(TPM_CAP_HANDLES).
func listHandles(t transport.TPM, first, last tpm2.TPMHandle) ([]tpm2.TPMHandle, error) {
	var out []tpm2.TPMHandle
	next := first
	for range maxHandles {
		rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: uint32(next), PropertyCount: maxHandles}.Execute(t)
		if err != nil {
			return nil, fmt.Errorf("attester: list handles from %#x: %w", uint32(first), err)
		}
		hl, err := rsp.CapabilityData.Data.Handles()
		if err != nil {
			return nil, fmt.Errorf("attester: list handles: %w", err)
		}
		for _, h := range hl.Handle {
			if h < next || h > last {
				return out, nil
			}
			out = append(out, h)
			next = h + 1
		}
		if !rsp.MoreData || len(hl.Handle) == 0 {
			return out, nil
		}
	}
	return out, nil
}
