package attester

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/quote"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

// TestWriteQuoteFixture writes a real swtpm quote as a test vector for
// package quote (quote/testdata/swtpm-quote): run with
// IMAGO_WRITE_QUOTE_FIXTURE=../quote/testdata/swtpm-quote.
func TestWriteQuoteFixture(t *testing.T) {
	dir := os.Getenv("IMAGO_WRITE_QUOTE_FIXTURE")
	if dir == "" {
		return
	}
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
	s.Start()
	s.PCRExtend(t, "10:sha1=0000000000000000000000000000000000000001,sha256=0000000000000000000000000000000000000000000000000000000000000001")
	_, d := openDevice(t, s)
	ak, err := d.AKPublic()
	if err != nil {
		t.Fatal(err)
	}
	nonce := []byte("imago quote fixture nonce 32 byt")
	sel := quote.NewSelection([]pcr.Bank{pcr.SHA1, pcr.SHA256}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	q, err := d.Quote(nonce, sel)
	if err != nil {
		t.Fatal(err)
	}
	oracle := s.PCRRead(t, "sha1:0,1,2,3,4,5,6,7,8,9,10+sha256:0,1,2,3,4,5,6,7,8,9,10")
	pj, _ := json.MarshalIndent(oracle, "", " ")
	os.MkdirAll(dir, 0o755)
	for name, b := range map[string][]byte{"attest.bin": q.Attest, "signature.bin": q.Signature, "ak.pub": tpm2.Marshal(*ak), "nonce.bin": nonce, "pcrs.json": pj} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
