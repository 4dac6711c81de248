package adopt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"iter"
	"os"
	"path/filepath"
	"testing"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
)

// readList reads a binary list fixture.
func readList(t testing.TB, path string) []*ima.Entry {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := ima.NewReader(bytes.NewReader(data), ima.ReaderOptions{DigestSize: 20})
	var out []*ima.Entry
	for e, err := range r.All() {
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, e)
	}
	return out
}

func seq(es []*ima.Entry) func() iter.Seq2[*ima.Entry, error] {
	return func() iter.Seq2[*ima.Entry, error] {
		return func(yield func(*ima.Entry, error) bool) {
			for _, e := range es {
				if !yield(e, nil) {
					return
				}
			}
		}
	}
}

// capturePCRs reads a capture's pcrs-<bank>.txt files (what the TPM held).
func capturePCRs(t *testing.T, dir string, banks ...pcr.Bank) pcr.Set {
	t.Helper()
	set := make(pcr.Set)
	for _, b := range banks {
		data, err := os.ReadFile(filepath.Join(dir, "pcrs-"+b.String()+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := pcr.ParseEvmctl(b, data)
		if err != nil {
			t.Fatal(err)
		}
		set.Merge(s)
	}
	return set
}

func refusal(t *testing.T, err error, want Reason) {
	t.Helper()
	var re *RefusedError
	if !errors.As(err, &re) || !errors.Is(err, ErrRefused) {
		t.Fatalf("err = %v, want a refusal (%s)", err, want)
	}
	if re.Reason != want {
		t.Fatalf("refused for %s (%v), want %s", re.Reason, err, want)
	}
}

func TestCheckFirst(t *testing.T) {
	bypass := readList(t, "testdata/bypass-6.1/binary_runtime_measurements")
	if alg, err := CheckFirst(bypass[0]); err != nil || alg != "sha256" {
		t.Fatalf("real bypass list: %q, %v", alg, err)
	}
	// A kernel that found its TPM: a real boot aggregate.
	withTPM := readList(t, "../testdata/realkernel/b-ima-sig/binary_runtime_measurements")
	_, err := CheckFirst(withTPM[0])
	refusal(t, err, NotBypass)
	_, err = CheckFirst(bypass[1])
	refusal(t, err, NotBypass)

	legacy, err := ima.NewEntry("ima", binary.LittleEndian, 10, ima.DigestLegacy(make([]byte, 20)), ima.Name("boot_aggregate"))
	if err != nil {
		t.Fatal(err)
	}
	if alg, err := CheckFirst(legacy); err != nil || alg != "sha1" {
		t.Fatalf("legacy ima template: %q, %v", alg, err)
	}
	late, _ := ima.NewEntry("ima-ng", binary.LittleEndian, 10, ima.DigestNG(ima.HashSHA384, make([]byte, 48)), ima.NameNG("boot_aggregate_late"))
	if alg, err := CheckFirst(late); err != nil || alg != "sha384" {
		t.Fatalf("boot_aggregate_late in bypass: %q, %v", alg, err)
	}
}

func TestCheckListed(t *testing.T) {
	es := readList(t, "testdata/bypass-6.1/binary_runtime_measurements")
	for i, e := range es {
		if err := CheckListed(i, e); err != nil {
			t.Fatal(err)
		}
	}
	bad := *es[3]
	bad.Digest = bytes.Clone(bad.Digest)
	bad.Digest[0] ^= 1
	refusal(t, CheckListed(3, &bad), BadList)
}

// TestFindPrefixRealTPM: on real captures the TPM (swtpm under a real
// kernel) holds the whole list; FindPrefix must say so in every bank. The
// sha384 bank of m-sha384-padded was extended by the kernel with padded
// SHA-1 (it could not hash sha384): adoption extends per-bank digests, so
// that TPM holds no prefix adoption would have made.
func TestFindPrefixRealTPM(t *testing.T) {
	for _, c := range []struct {
		dir   string
		banks []pcr.Bank
		want  int
		ok    bool
	}{
		{"../testdata/realkernel/b-ima-sig", []pcr.Bank{pcr.SHA1, pcr.SHA256}, 16, true},
		{"../testdata/realkernel/c-ima-legacy", []pcr.Bank{pcr.SHA1, pcr.SHA256}, 16, true},
		{"../testdata/realkernel/j-sha384-bank", []pcr.Bank{pcr.SHA1, pcr.SHA256, pcr.SHA384}, 16, true},
		{"../testdata/realkernel/m-sha384-padded", []pcr.Bank{pcr.SHA1, pcr.SHA256, pcr.SHA384}, 0, false},
	} {
		t.Run(filepath.Base(c.dir), func(t *testing.T) {
			es := readList(t, filepath.Join(c.dir, "binary_runtime_measurements"))
			set := capturePCRs(t, c.dir, c.banks...)
			var banks []Bank
			for _, b := range c.banks {
				banks = append(banks, Bank{b, b.Size()})
			}
			k, err := FindPrefix(seq(es), set, banks)
			if !c.ok {
				refusal(t, err, NotPrefix)
				return
			}
			if err != nil || k != c.want {
				t.Fatalf("FindPrefix = %d, %v; want %d", k, err, c.want)
			}
		})
	}
}

// TestFindPrefixEveryPrefix extends the list entry by entry with pcr.Extend
// (what a TPM computes) and checks FindPrefix after every prefix, then the
// refusals: a value no prefix gives, banks that disagree, a padded bank.
func TestFindPrefixEveryPrefix(t *testing.T) {
	es := readList(t, "testdata/bypass-6.1/binary_runtime_measurements")
	banks := []Bank{{pcr.SHA1, 20}, {pcr.SHA256, 32}, {pcr.SHA384, 48}, {pcr.SHA512, 64}}
	tpm := make(pcr.Set)
	for _, b := range banks {
		for i := range 24 {
			tpm.Put(b.Alg, i, pcr.Zero(b.Alg))
		}
	}
	states := []pcr.Set{clone(tpm)}
	for _, e := range es {
		for b, d := range Digests(e, banks) {
			v, _ := tpm.Get(b, int(e.PCR))
			tpm.Put(b, int(e.PCR), pcr.Extend(b, v, d))
		}
		states = append(states, clone(tpm))
	}
	for k, s := range states {
		got, err := FindPrefix(seq(es), s, banks)
		if err != nil || got != k {
			t.Fatalf("prefix %d: FindPrefix = %d, %v", k, got, err)
		}
	}
	mixed := clone(states[5])
	v, _ := states[7].Get(pcr.SHA256, 10)
	mixed.Put(pcr.SHA256, 10, v)
	_, err := FindPrefix(seq(es), mixed, banks)
	refusal(t, err, NotPrefix)

	foreign := clone(states[0])
	foreign.Put(pcr.SHA1, 10, pcr.Extend(pcr.SHA1, pcr.Zero(pcr.SHA1), bytes.Repeat([]byte{7}, 20)))
	_, err = FindPrefix(seq(es), foreign, banks)
	refusal(t, err, NotPrefix)

	// Only a bank imago cannot hash: nothing can be checked.
	_, err = FindPrefix(seq(es), states[3], []Bank{{pcr.Bank(0x27), 32}})
	refusal(t, err, NoBank)
}

func clone(s pcr.Set) pcr.Set {
	c := make(pcr.Set)
	c.Merge(s)
	return c
}

// TestDigests: what one extend carries, per bank: the bank's hash of the
// template data, SHA-1 padded for an unknown bank, 0xFF for a violation.
func TestDigests(t *testing.T) {
	es := readList(t, "testdata/bypass-6.1/binary_runtime_measurements")
	e := es[2]
	sha3 := pcr.Bank(0x27)
	d := Digests(e, []Bank{{pcr.SHA1, 20}, {pcr.SHA256, 32}, {sha3, 32}})
	if !bytes.Equal(d[pcr.SHA1], e.Digest) {
		t.Errorf("sha1 %x, listed %x", d[pcr.SHA1], e.Digest)
	}
	if !bytes.Equal(d[pcr.SHA256], e.TemplateDigest(pcr.SHA256)) {
		t.Errorf("sha256 %x", d[pcr.SHA256])
	}
	if want := append(bytes.Clone(e.Digest), make([]byte, 12)...); !bytes.Equal(d[sha3], want) {
		t.Errorf("unknown bank %x, want %x", d[sha3], want)
	}
	v := *e
	v.Digest = make([]byte, 20)
	d = Digests(&v, []Bank{{pcr.SHA256, 32}, {sha3, 32}})
	if !bytes.Equal(d[pcr.SHA256], bytes.Repeat([]byte{0xff}, 32)) {
		t.Errorf("violation sha256 %x", d[pcr.SHA256])
	}
	if want := append(bytes.Repeat([]byte{0xff}, 20), make([]byte, 12)...); !bytes.Equal(d[sha3], want) {
		t.Errorf("violation unknown bank %x", d[sha3])
	}
}

func TestChainCheck(t *testing.T) {
	banks := []Bank{{pcr.SHA256, 32}}
	tpm := pcr.Set{pcr.SHA256: {10: pcr.Zero(pcr.SHA256)}}
	c := newChain(banks, tpm, map[int]bool{10: true})
	d := map[pcr.Bank][]byte{pcr.SHA256: bytes.Repeat([]byte{1}, 32)}
	c.extend(10, d)
	want := pcr.Extend(pcr.SHA256, pcr.Zero(pcr.SHA256), d[pcr.SHA256])
	if err := c.check(pcr.Set{pcr.SHA256: {10: want, 11: pcr.Zero(pcr.SHA256)}}, []int{10, 11}); err != nil {
		t.Fatal(err)
	}
	refusal(t, c.check(pcr.Set{pcr.SHA256: {10: pcr.Zero(pcr.SHA256)}}, []int{10}), NotPrefix)

	// A PCR the prefix does not extend is expected at zeros, whatever the
	// TPM held when the chain started.
	other := pcr.Extend(pcr.SHA256, pcr.Zero(pcr.SHA256), d[pcr.SHA256])
	c = newChain(banks, pcr.Set{pcr.SHA256: {10: want, 11: other}}, map[int]bool{10: true})
	refusal(t, c.check(pcr.Set{pcr.SHA256: {10: want, 11: other}}, []int{10, 11}), NotPrefix)
}

func TestRecord(t *testing.T) {
	r := Record{Listed: 16, PCR: 10, Banks: []pcr.Bank{pcr.SHA1, pcr.SHA256}, Aggregate: "sha256:00ff"}
	text := r.Format()
	if string(text) != "listed=16 pcr=10 banks=sha1,sha256 aggregate=sha256:00ff" {
		t.Fatalf("Format = %q", text)
	}
	got, err := ParseRecord(append(bytes.Clone(text), " future=1"...))
	if err != nil || got.Listed != 16 || got.PCR != 10 || len(got.Banks) != 2 || got.Aggregate != r.Aggregate {
		t.Fatalf("ParseRecord = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "listed=16", "listed=016 pcr=10 banks=sha1", "listed=1 listed=2 pcr=10 banks=sha1",
		"listed=1 pcr=64 banks=sha1", "listed=1 pcr=10 banks=md5", "listed=-1 pcr=10 banks=sha1", "listed=1  pcr=10 banks=sha1",
		"listed=1 pcr=10 banks=sha1 aggregate=zz", "listed=1 pcr=10\nbanks=sha1"} {
		if _, err := ParseRecord([]byte(bad)); err == nil {
			t.Errorf("ParseRecord(%q) accepted", bad)
		}
	}
}

// TestRecordEntry: the record as an ima-buf entry, read back from its
// binary form; evmctl-style template digest included (NewEntry's SHA-1 is
// checked by CheckListed).
func TestRecordEntry(t *testing.T) {
	r := Record{Listed: 18, PCR: 10, Banks: []pcr.Bank{pcr.SHA1, pcr.SHA256}, Aggregate: "sha256:7b64"}
	e, err := r.Entry(ima.HashSHA256, binary.LittleEndian, 11)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckListed(0, e); err != nil {
		t.Fatal(err)
	}
	rec, _ := ima.AppendBinary(nil, e, binary.LittleEndian)
	back, err := ima.NewReader(bytes.NewReader(rec), ima.ReaderOptions{DigestSize: 20}).Next()
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := RecordOf(back)
	if !ok || err != nil || got.Listed != 18 || got.Aggregate != r.Aggregate || back.PCR != 11 || back.Template != "ima-buf" {
		t.Fatalf("RecordOf = %+v, %v, %v (entry %s on PCR %d)", got, ok, err, back.Template, back.PCR)
	}
	// A changed buffer no longer matches its digest.
	bad := bytes.Replace(rec, []byte("listed=18"), []byte("listed=10"), 1)
	back, _ = ima.NewReader(bytes.NewReader(bad), ima.ReaderOptions{DigestSize: 20}).Next()
	if _, ok, err := RecordOf(back); !ok || err == nil {
		t.Fatalf("tampered record: ok %v err %v", ok, err)
	}
	other := readList(t, "testdata/bypass-6.1/binary_runtime_measurements")[3]
	if _, ok, err := RecordOf(other); ok || err != nil {
		t.Fatalf("a file entry: ok %v err %v", ok, err)
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte("listed=16 pcr=10 banks=sha1,sha256 aggregate=sha256:00ff"))
	f.Add([]byte("listed=0 pcr=11 banks=sha256"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRecord(data)
		if err != nil {
			if r.Listed != 0 || r.Banks != nil || r.Aggregate != "" {
				t.Fatalf("a value with an error: %+v", r)
			}
			return
		}
		again, err := ParseRecord(r.Format())
		if err != nil || again.Listed != r.Listed || again.PCR != r.PCR || len(again.Banks) != len(r.Banks) {
			t.Fatalf("round trip of %q: %+v, %v", r.Format(), again, err)
		}
	})
}
