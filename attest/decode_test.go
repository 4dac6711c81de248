package attest

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeEvidenceErrors(t *testing.T) {
	good := `{"token":"t","quote":{"attest":"AQI=","signature":"AwQ="},"pcrs":{"sha256":{"10":"` + zeros(64) + `"}},"offset":3,"list":""}`
	if _, err := DecodeEvidence([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ in, field string }{
		"unknown field":    {strings.Replace(good, `"offset"`, `"extra":1,"offset"`, 1), ""},
		"trailing data":    {good + "{}", ""},
		"no token":         {strings.Replace(good, `"token":"t",`, ``, 1), "token"},
		"empty attest":     {strings.Replace(good, `"attest":"AQI="`, `"attest":""`, 1), "quote.attest"},
		"PCR 24":           {strings.Replace(good, `"10":`, `"24":`, 1), "pcrs"},
		"short PCR":        {strings.Replace(good, zeros(64), zeros(62), 1), ""},
		"not an object":    {`[1]`, ""},
		"offset is string": {strings.Replace(good, `"offset":3`, `"offset":"3"`, 1), "offset"},
	} {
		t.Run(name, func(t *testing.T) {
			v, err := DecodeEvidence([]byte(tc.in))
			var fe *FormatError
			if v != nil || !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("got %v, %v; want a FormatError on field %q", v, err, tc.field)
			}
		})
	}
	if _, err := DecodeEvidence(make([]byte, MaxEvidenceSize+1)); err == nil {
		t.Fatal("oversized evidence accepted")
	}
}

func TestValidNodeName(t *testing.T) {
	for _, ok := range []string{"n1", "web-01.example.com", "host:1", "_x"} {
		if err := ValidNodeName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", ".x", "a/b", "a b", "a\x00", strings.Repeat("a", 129), "é"} {
		if ValidNodeName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
