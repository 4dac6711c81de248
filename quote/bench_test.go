package quote

import "testing"

func BenchmarkParseAndCheck(b *testing.B) {
	f := readFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		q, err := Parse(f.attest, f.sig)
		if err != nil {
			b.Fatal(err)
		}
		if err := q.CheckSignature(f.ak); err != nil {
			b.Fatal(err)
		}
		if err := q.CheckPCRs(f.pcrs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	f := readFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(f.attest, f.sig); err != nil {
			b.Fatal(err)
		}
	}
}
