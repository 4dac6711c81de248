package enroll

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
)

// testEK makes an ECC EK public area and a certificate for it from a new
// root.
func testEK(tb testing.TB) (*tpm2.TPMTPublic, []byte, *x509.Certificate) {
	tb.Helper()
	ca, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rt := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	rd, _ := x509.CreateCertificate(rand.Reader, rt, rt, &ca.PublicKey, ca)
	root, _ := x509.ParseCertificate(rd)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	et := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "ek"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	ed, _ := x509.CreateCertificate(rand.Reader, et, root, &ek.PublicKey, ca)
	pub := tpm2.ECCEKTemplate
	pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: ek.X.FillBytes(make([]byte, 32))},
		Y: tpm2.TPM2BECCParameter{Buffer: ek.Y.FillBytes(make([]byte, 32))},
	})
	return &pub, ed, root
}

func TestCheckEKCertificate(t *testing.T) {
	pub, cert, root := testEK(t)
	r := NewRoots([]*x509.Certificate{root})
	if r.Len() != 1 {
		t.Fatal("root not taken as an anchor")
	}
	if _, err := r.CheckEKCertificate(pub, cert, nil, x509.VerifyOptions{CurrentTime: time.Now()}); err != nil {
		t.Fatal(err)
	}
	other, _, _ := testEK(t)
	if _, err := r.CheckEKCertificate(other, cert, nil, x509.VerifyOptions{CurrentTime: time.Now()}); err == nil {
		t.Fatal("a certificate for another key accepted")
	}
	if _, err := r.CheckEKCertificate(pub, cert, nil, x509.VerifyOptions{CurrentTime: time.Now().Add(2 * time.Hour)}); err == nil {
		t.Fatal("an expired certificate accepted")
	}
	if _, err := (*Roots)(nil).CheckEKCertificate(pub, cert, nil, x509.VerifyOptions{}); err == nil {
		t.Fatal("accepted without roots")
	}
}

func TestCheckAK(t *testing.T) {
	ok := tpm2.TPMTPublic{Type: tpm2.TPMAlgECC, NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true, Restricted: true, SignEncrypt: true},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Scheme:  tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgECDSA, Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256})},
			CurveID: tpm2.TPMECCNistP256,
		})}
	if err := CheckAK(&ok); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(p *tpm2.TPMTPublic){
		"not restricted":   func(p *tpm2.TPMTPublic) { p.ObjectAttributes.Restricted = false },
		"not fixedTPM":     func(p *tpm2.TPMTPublic) { p.ObjectAttributes.FixedTPM = false },
		"imported":         func(p *tpm2.TPMTPublic) { p.ObjectAttributes.SensitiveDataOrigin = false },
		"decrypt":          func(p *tpm2.TPMTPublic) { p.ObjectAttributes.Decrypt = true },
		"sha1 name":        func(p *tpm2.TPMTPublic) { p.NameAlg = tpm2.TPMAlgSHA1 },
		"storage key (EK)": func(p *tpm2.TPMTPublic) { *p = tpm2.RSAEKTemplate },
	} {
		p := ok
		mod(&p)
		if CheckAK(&p) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzCheckEKCertificate: attester-supplied EK public areas, certificates
// and chains never panic the check.
func FuzzCheckEKCertificate(f *testing.F) {
	pub, cert, root := testEK(f)
	r := NewRoots([]*x509.Certificate{root})
	f.Add(tpm2.Marshal(*pub), cert, []byte{})
	f.Add(tpm2.Marshal(tpm2.RSAEKTemplate), cert[:100], root.Raw)
	f.Fuzz(func(t *testing.T, ekPub, cert, chain []byte) {
		p, err := tpm2.Unmarshal[tpm2.TPMTPublic](ekPub)
		if err != nil {
			return
		}
		var ch [][]byte
		if len(chain) > 0 {
			ch = [][]byte{chain}
		}
		c, err := r.CheckEKCertificate(p, cert, ch, x509.VerifyOptions{CurrentTime: time.Now()})
		if err != nil && c != nil {
			t.Fatal("value with error")
		}
		CheckAK(p)
		Name(p)
	})
}
