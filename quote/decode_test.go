package quote

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/google/go-tpm/tpm2"
)

// FuzzParseDirect holds the direct decoder to go-tpm's: both accept the same
// quotes and decode them to the same values.
func FuzzParseDirect(f *testing.F) {
	fx := readFixture(f)
	f.Add(fx.attest, fx.sig)
	f.Add(fx.attest, rsaSig(tpm2.TPMAlgRSASSA, 256))
	f.Add(fx.attest, rsaSig(tpm2.TPMAlgRSAPSS, 0))
	f.Fuzz(func(t *testing.T, attest, sig []byte) {
		if len(attest) > MaxAttestSize || len(sig) > MaxSignatureSize {
			return
		}
		direct, ok := parseDirect(attest, sig)
		general, err := parseReflective(attest, sig)
		if ok != (err == nil) {
			t.Fatalf("direct decoder ok %v, go-tpm's error %v", ok, err)
		}
		if ok && !reflect.DeepEqual(direct, general) {
			t.Fatalf("decoded differently:\ndirect %+v\ngo-tpm %+v", direct, general)
		}
	})
}

// rsaSig is an RSA TPMT_SIGNATURE of scheme alg with a signature of n
// bytes (not a valid signature).
func rsaSig(alg tpm2.TPMAlgID, n int) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(alg))
	b = binary.BigEndian.AppendUint16(b, uint16(tpm2.TPMAlgSHA256))
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	return append(b, bytes.Repeat([]byte{0xa5}, n)...)
}

// TestParseDirectForms: the forms real TPMs send take the direct path,
// and what it refuses goes to go-tpm, which says why.
func TestParseDirectForms(t *testing.T) {
	fx := readFixture(t)
	for name, sig := range map[string][]byte{"ecdsa": fx.sig, "rsassa": rsaSig(tpm2.TPMAlgRSASSA, 256), "rsapss": rsaSig(tpm2.TPMAlgRSAPSS, 384)} {
		if _, ok := parseDirect(fx.attest, sig); !ok {
			t.Errorf("%s: not decoded directly", name)
		}
	}
	hmacSig := binary.BigEndian.AppendUint16(nil, uint16(tpm2.TPMAlgHMAC))
	for name, c := range map[string]struct{ attest, sig []byte }{
		"trailing attest":    {append(bytes.Clone(fx.attest), 0), fx.sig},
		"short attest":       {fx.attest[:len(fx.attest)-1], fx.sig},
		"trailing signature": {fx.attest, append(bytes.Clone(fx.sig), 0)},
		"hmac signature":     {fx.attest, hmacSig},
		"not generated":      {append([]byte{0}, fx.attest[1:]...), fx.sig},
	} {
		if _, ok := parseDirect(c.attest, c.sig); ok {
			t.Errorf("%s: decoded directly", name)
		}
		if q, err := Parse(c.attest, c.sig); err == nil || q != nil {
			t.Errorf("%s: Parse gave %v, %v", name, q, err)
		}
	}
}
