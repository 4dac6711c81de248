package attest

import (
	"bytes"
	"encoding/json"
	"testing"
)

// Each decoder of attester (and operator) input: no panic; an error comes
// with a nil value; what decodes re-encodes to JSON that decodes to the
// same value (as JSON: an empty list and no list are the same).
func fuzzDecoder[T any](f *testing.F, decode func([]byte) (*T, error), seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decode(data)
		if err != nil {
			if v != nil {
				t.Fatalf("value with error %v", err)
			}
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		v2, err := decode(b)
		if err != nil {
			t.Fatalf("re-encoded value does not decode: %v\n%s", err, b)
		}
		b2, _ := json.Marshal(v2)
		if !bytes.Equal(b, b2) {
			t.Fatalf("round trip changed the value:\n%s\n%s", b, b2)
		}
	})
}

func FuzzDecodeEvidence(f *testing.F) {
	fuzzDecoder(f, DecodeEvidence,
		`{"token":"t","quote":{"attest":"AQI=","signature":"AwQ="},"pcrs":{"sha256":{"10":"`+zeros(64)+`"}},"offset":3,"list":""}`,
		`{"nonce":"AAE=","quote":{"attest":"AQI=","signature":"AwQ="},"pcrs":{"sha1":{"0":"`+zeros(40)+`"}},"offset":0,"list":"","event_log":"AA==","ak_public":"AA=="}`)
}

func FuzzDecodeEnrollRequest(f *testing.F) {
	fuzzDecoder(f, DecodeEnrollRequest, `{"ek_public":"AQI=","ek_certificate":"MAA=","ek_chain":["MAA="],"ak_public":"AwQ="}`)
}

func FuzzDecodeActivateRequest(f *testing.F) {
	fuzzDecoder(f, DecodeActivateRequest, `{"token":"abc","secret":"AAECAw=="}`)
}

func FuzzDecodeChallengeRequest(f *testing.F) {
	fuzzDecoder(f, DecodeChallengeRequest, `{"banks":["sha1","sha256"],"list_pcrs":[10,11]}`)
}

func FuzzDecodeNodeAdd(f *testing.F) {
	fuzzDecoder(f, DecodeNodeAdd, `{"node":"n1","runtime_policy":"e30=","keyrings":["AA=="],"allow_ek_without_cert":true}`)
}

func zeros(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = '0'
	}
	return string(b)
}
