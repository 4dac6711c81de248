package ear

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/imago-ima/imago/attest"
)

func TestIssueVerify(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss, err := NewIssuer(key, "test")
	if err != nil {
		t.Fatal(err)
	}
	res := &attest.Result{Node: "n1", Verdict: attest.VerdictFail, State: attest.StateFail,
		Failures: []attest.Failure{{Entry: 7, Path: "/usr/bin/evil", ID: "ima.validation.ima-ng.not_in_allowlist"}}}
	tok, err := iss.Issue(Input{Node: "n1", Result: res, PolicyID: "abc", Authentic: true, Time: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Verify(tok, iss.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	a := c.Submods[Submodule]
	if c.Profile != Profile || c.Subject != "n1" || a.Status != StatusContraindicated || a.Vector["executables"] != 33 ||
		a.Failures[0].Path != "/usr/bin/evil" || c.IssuedAt != 1700000000 {
		t.Fatalf("claims %+v", c)
	}
	// A changed payload does not verify; another key does not verify.
	parts := strings.Split(tok, ".")
	parts[1] = parts[1][:len(parts[1])-2] + "AA"
	if _, err := Verify(strings.Join(parts, "."), iss.JWKS()); err == nil {
		t.Fatal("tampered token verified")
	}
	key2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss2, _ := NewIssuer(key2, "test")
	if _, err := Verify(tok, iss2.JWKS()); err == nil {
		t.Fatal("token verified with another key")
	}
}
