package softtpm

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/google/go-tpm/tpm2"

	"github.com/imago-ima/imago/attester"
	"github.com/imago-ima/imago/enroll"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/quote"
)

// TPM is one emulated TPM. Its methods are safe for concurrent use.
type TPM struct {
	mu sync.Mutex

	ekKey  *ecdh.PrivateKey
	ekPub  tpm2.TPMTPublic
	ekCert []byte

	akKey  *ecdsa.PrivateKey
	akPub  tpm2.TPMTPublic
	akName []byte

	banks []pcr.Bank
	pcrs  pcr.Set
	clock quote.ClockInfo
}

// New makes a TPM with fresh keys, banks sha1 and sha256, PCRs at zero,
// and an EK certificate from ca (none if ca is nil).
func New(ca *CA, subject string) (*TPM, error) {
	ek, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	ak, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	t := &TPM{ekKey: ek, akKey: ak, banks: []pcr.Bank{pcr.SHA1, pcr.SHA256}}
	raw := ek.PublicKey().Bytes() // 0x04 || X || Y
	t.ekPub = tpm2.ECCEKTemplate
	t.ekPub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: raw[1:33]},
		Y: tpm2.TPM2BECCParameter{Buffer: raw[33:]},
	})
	t.akPub = attester.AKTemplate()
	t.akPub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: ak.X.FillBytes(make([]byte, 32))},
		Y: tpm2.TPM2BECCParameter{Buffer: ak.Y.FillBytes(make([]byte, 32))},
	})
	if t.akName, err = enroll.Name(&t.akPub); err != nil {
		return nil, err
	}
	if ca != nil {
		ekECDSA, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
		if err != nil {
			return nil, err
		}
		if t.ekCert, err = ca.Issue(ekECDSA, subject); err != nil {
			return nil, err
		}
	}
	t.clock = quote.ClockInfo{Clock: 1, Safe: true}
	t.resetPCRs()
	return t, nil
}

func (t *TPM) resetPCRs() {
	t.pcrs = make(pcr.Set)
	for _, b := range t.banks {
		for i := range quote.NumPCRs {
			t.pcrs.Put(b, i, make([]byte, b.Size()))
		}
	}
}

// Reset is a reboot: PCRs to zero, resetCount up, restartCount to zero.
func (t *TPM) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.resetPCRs()
	t.clock.ResetCount++
	t.clock.RestartCount = 0
}

// Extend extends PCR i of every bank with the digest given for it.
func (t *TPM) Extend(i int, digests map[pcr.Bank][]byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for b, d := range digests {
		old, _ := t.pcrs.Get(b, i)
		t.pcrs[b][i] = pcr.Extend(b, old, d)
	}
}

// PCRs returns a copy of the PCR values.
func (t *TPM) PCRs() pcr.Set {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(pcr.Set)
	out.Merge(t.pcrs)
	return out
}

// Endorsement implements attester.TPM.
func (t *TPM) Endorsement() (*attester.Endorsement, error) {
	return &attester.Endorsement{Public: t.ekPub, Certificate: t.ekCert}, nil
}

// AKPublic implements attester.TPM.
func (t *TPM) AKPublic() (*tpm2.TPMTPublic, error) {
	p := t.akPub
	return &p, nil
}

// Banks implements attester.TPM.
func (t *TPM) Banks() ([]pcr.Bank, error) { return t.banks, nil }

// ErrIntegrity: the credential's HMAC does not verify (it was made for
// another EK or another object name), as TPM_RC_INTEGRITY.
var ErrIntegrity = errors.New("softtpm: credential integrity check failed")

// Activate implements attester.TPM: the TPM's side of
// TPM2_ActivateCredential (Part 1 §24.4 and §24.5) for an ECC EK with
// name algorithm SHA-256 and AES-128-CFB: the seed from ECDH with the
// ephemeral point and KDFe("IDENTITY"), the HMAC key from
// KDFa("INTEGRITY") over encIdentity || AK name, the AES key from
// KDFa("STORAGE", name), and the TPM2B_DIGEST inside.
func (t *TPM) Activate(c *enroll.Credential) ([]byte, error) {
	pt, err := tpm2.Unmarshal[tpm2.TPMSECCPoint](c.EncSecret)
	if err != nil {
		return nil, fmt.Errorf("softtpm: activate: encrypted secret: %w", err)
	}
	eph, err := ecdh.P256().NewPublicKey(append(append([]byte{4}, pad32(pt.X.Buffer)...), pad32(pt.Y.Buffer)...))
	if err != nil {
		return nil, fmt.Errorf("softtpm: activate: ephemeral point: %w", err)
	}
	z, err := t.ekKey.ECDH(eph)
	if err != nil {
		return nil, fmt.Errorf("softtpm: activate: %w", err)
	}
	pubX := t.ekKey.PublicKey().Bytes()[1:33]
	seed := tpm2.KDFe(crypto.SHA256, z, "IDENTITY", pad32(pt.X.Buffer), pubX, 256)

	d, err := tpm2.Unmarshal[tpm2.TPM2BDigest](c.IDObject)
	if err != nil || len(c.IDObject) < 2+len(d.Buffer) {
		return nil, fmt.Errorf("softtpm: activate: id object: %v", err)
	}
	mac, encIdentity := d.Buffer, c.IDObject[2+len(d.Buffer):]
	hk := tpm2.KDFa(crypto.SHA256, seed, "INTEGRITY", nil, nil, 256)
	h := hmac.New(sha256.New, hk)
	h.Write(encIdentity)
	h.Write(t.akName)
	if !hmac.Equal(h.Sum(nil), mac) {
		return nil, ErrIntegrity
	}
	block, err := aes.NewCipher(tpm2.KDFa(crypto.SHA256, seed, "STORAGE", t.akName, nil, 128))
	if err != nil {
		return nil, err
	}
	plain := make([]byte, len(encIdentity))
	cipher.NewCFBDecrypter(block, make([]byte, aes.BlockSize)).XORKeyStream(plain, encIdentity) //nolint:staticcheck // TPM credential protection is CFB
	secret, err := tpm2.Unmarshal[tpm2.TPM2BDigest](plain)
	if err != nil || len(plain) != 2+len(secret.Buffer) {
		return nil, fmt.Errorf("softtpm: activate: credential: %v", err)
	}
	return secret.Buffer, nil
}

func pad32(b []byte) []byte {
	if len(b) >= 32 {
		return b
	}
	return append(make([]byte, 32-len(b)), b...)
}

// Quote implements attester.TPM: a TPMS_ATTEST of type
// TPM_ST_ATTEST_QUOTE over the selection with the PCR digest under
// SHA-256, the clock advanced by one millisecond, signed ECDSA-SHA256.
func (t *TPM) Quote(nonce []byte, sel quote.Selection) (*attester.Quoted, error) {
	if err := sel.Check(); err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.clock.Clock++
	clock := t.clock
	values := make(pcr.Set)
	for _, b := range sel {
		for _, i := range b.PCRs {
			v, ok := t.pcrs.Get(b.Bank, i)
			if !ok {
				t.mu.Unlock()
				return nil, fmt.Errorf("softtpm: bank %s not allocated", b.Bank)
			}
			values.Put(b.Bank, i, v)
		}
	}
	t.mu.Unlock()
	digest, err := quote.Digest(pcr.SHA256, sel, values)
	if err != nil {
		return nil, err
	}
	attest := appendAttest(nil, t.akName, nonce, clock, sel, digest)
	sum := sha256.Sum256(attest)
	r, s, err := ecdsa.Sign(rand.Reader, t.akKey, sum[:])
	if err != nil {
		return nil, err
	}
	sig := appendECDSASig(nil, r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32)))
	return &attester.Quoted{Attest: attest, Signature: sig, PCRs: values}, nil
}

// firmwareVersion is what the emulated TPMs report.
const firmwareVersion = 0x20260101

// marshalAttest is TPMS_ATTEST of a quote marshalled by go-tpm: what
// appendAttest must equal (softtpm_test checks it).
func marshalAttest(akName, nonce []byte, clock quote.ClockInfo, sel quote.Selection, digest []byte) []byte {
	a := tpm2.TPMSAttest{
		Magic:           tpm2.TPMGeneratedValue,
		Type:            tpm2.TPMSTAttestQuote,
		QualifiedSigner: tpm2.TPM2BName{Buffer: akName},
		ExtraData:       tpm2.TPM2BData{Buffer: bytes.Clone(nonce)},
		ClockInfo: tpm2.TPMSClockInfo{
			Clock: clock.Clock, ResetCount: clock.ResetCount, RestartCount: clock.RestartCount, Safe: tpm2.TPMIYesNo(clock.Safe),
		},
		FirmwareVersion: firmwareVersion,
		Attested: tpm2.NewTPMUAttest(tpm2.TPMSTAttestQuote, &tpm2.TPMSQuoteInfo{
			PCRSelect: sel.TPM(),
			PCRDigest: tpm2.TPM2BDigest{Buffer: digest},
		}),
	}
	return tpm2.Marshal(a)
}

// marshalSig is the ECDSA TPMT_SIGNATURE marshalled by go-tpm.
func marshalSig(r, s []byte) []byte {
	return tpm2.Marshal(tpm2.TPMTSignature{
		SigAlg: tpm2.TPMAlgECDSA,
		Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{
			Hash:       tpm2.TPMAlgSHA256,
			SignatureR: tpm2.TPM2BECCParameter{Buffer: r},
			SignatureS: tpm2.TPM2BECCParameter{Buffer: s},
		}),
	})
}

// appendAttest encodes a quote's TPMS_ATTEST (TPM 2.0 Part 2 §10.12.12)
// directly, the same bytes as marshalAttest at a fraction of go-tpm's
// reflective cost (the load generator makes thousands a second).
func appendAttest(b, akName, nonce []byte, clock quote.ClockInfo, sel quote.Selection, digest []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(tpm2.TPMGeneratedValue))
	b = binary.BigEndian.AppendUint16(b, uint16(tpm2.TPMSTAttestQuote))
	b = append2B(b, akName)
	b = append2B(b, nonce)
	b = binary.BigEndian.AppendUint64(b, clock.Clock)
	b = binary.BigEndian.AppendUint32(b, clock.ResetCount)
	b = binary.BigEndian.AppendUint32(b, clock.RestartCount)
	safe := byte(0)
	if clock.Safe {
		safe = 1
	}
	b = append(b, safe)
	b = binary.BigEndian.AppendUint64(b, firmwareVersion)
	l := sel.TPM()
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.PCRSelections)))
	for _, s := range l.PCRSelections {
		b = binary.BigEndian.AppendUint16(b, uint16(s.Hash))
		b = append(b, byte(len(s.PCRSelect)))
		b = append(b, s.PCRSelect...)
	}
	return append2B(b, digest)
}

// appendECDSASig encodes an ECDSA-SHA256 TPMT_SIGNATURE (§11.3.4).
func appendECDSASig(b, r, s []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(tpm2.TPMAlgECDSA))
	b = binary.BigEndian.AppendUint16(b, uint16(tpm2.TPMAlgSHA256))
	return append2B(append2B(b, r), s)
}

func append2B(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// SetPCRs makes the TPM's banks and PCRs those of s (PCRs s lacks are zero):
// a TPM in the state a captured boot left a real one in.
func (t *TPM) SetPCRs(s pcr.Set) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.banks = s.Banks()
	t.resetPCRs()
	t.pcrs.Merge(s)
}
