package attest

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/imago-ima/imago/pcr"
)

// plainEvidence is a round's evidence as an attester writes it.
func plainEvidence() string {
	return `{"token":"eyJuIjoibjEifQ.c2ln","quote":{"attest":"/1RDR4AYACIAC/M=","signature":"ABgACwAgzgzg"},"pcrs":{"sha1":{"0":"` +
		zeros(40) + `","10":"` + zeros(40) + `"},"sha256":{"10":"` + zeros(64) + `"}},"offset":51,"list":"CgAAAA=="}`
}

// FuzzEvidenceDirect: what the direct decoder accepts, encoding/json
// decodes to the same value; and AppendJSON writes json.Marshal's bytes.
func FuzzEvidenceDirect(f *testing.F) {
	f.Add([]byte(plainEvidence()))
	f.Add([]byte(` { "nonce" : "AAE=", "quote" : { "signature" : "AwQ=" , "attest" : "AQI=" } , "pcrs" : {"sha256":{"1":"` + zeros(64) + `"}}, "offset" : 0, "list" : "", "event_log" : "AA==", "ak_public" : "AA==" } `))
	f.Add([]byte(`{"token":"a","token":"b"}`))
	f.Add([]byte(`{"Token":"a","offset":1e3,"list":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		direct, ok := decodeEvidenceDirect(data)
		if ok {
			general := new(Evidence)
			if err := decode("evidence", data, MaxEvidenceSize, general); err != nil {
				t.Fatalf("direct decoder accepted what encoding/json refuses (%v): %q", err, data)
			}
			if !reflect.DeepEqual(direct, general) {
				t.Fatalf("decoded differently:\ndirect  %#v\ngeneral %#v", direct, general)
			}
		}
		// The encoder, on evidence made of the same bytes.
		e := evidenceFrom(data)
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON:\n%s\njson.Marshal:\n%s", got, want)
		}
	})
}

// evidenceFrom makes evidence of arbitrary content from b.
func evidenceFrom(b []byte) *Evidence {
	part := func(i int) []byte {
		if len(b) == 0 {
			return nil
		}
		n := len(b) / 4
		switch i % 3 {
		case 0:
			return b[:n]
		case 1:
			return b[n : 2*n]
		}
		return nil
	}
	e := &Evidence{Token: string(part(0)), Nonce: part(1), Quote: Quote{Attest: part(0), Signature: part(2)},
		Offset: uint64(len(b)) << 40, List: part(1), EventLog: part(2), AKPublic: part(0)}
	if len(b) > 0 && b[0]&1 == 1 {
		s := pcr.Set{}
		s.Put(pcr.Bank(uint16(len(b))), int(b[0]%24), b)
		s.Put(pcr.SHA256, 10, part(1))
		e.PCRs = PCRValues(s)
	}
	return e
}

// TestEvidenceDirect: attesters' evidence takes the direct path; other
// forms go to encoding/json.
func TestEvidenceDirect(t *testing.T) {
	if _, ok := decodeEvidenceDirect([]byte(plainEvidence())); !ok {
		t.Fatal("plain evidence not decoded directly")
	}
	for _, in := range []string{`{"token":"a","token":"b"}`, `{"Token":"a"}`, `{"token":"\u0061"}`, `{"offset":1.0}`, `{"list":null}`, `{"list":"AA=="}x`} {
		if _, ok := decodeEvidenceDirect([]byte(in)); ok {
			t.Errorf("%s: decoded directly", in)
		}
	}
}

func BenchmarkDecodeEvidence(b *testing.B) {
	data := []byte(plainEvidence())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEvidence(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEvidenceGeneral(b *testing.B) {
	data := []byte(plainEvidence())
	b.ReportAllocs()
	for b.Loop() {
		if err := decode("evidence", data, MaxEvidenceSize, new(Evidence)); err != nil {
			b.Fatal(err)
		}
	}
}
