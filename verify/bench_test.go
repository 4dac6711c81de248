package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/cputime"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/runtimepolicy"
)

// benchList makes an ascii ima-ng list of n entries and a policy that
// holds every digest, and the list's sha1 and sha256 PCR 10.
func benchList(b *testing.B, n int) ([]byte, *runtimepolicy.Compiled, pcr.Set) {
	b.Helper()
	var list []byte
	p := runtimepolicy.New()
	v1, v256 := make([]byte, 20), make([]byte, 32)
	var seed [8]byte
	for i := range n {
		binary.LittleEndian.PutUint64(seed[:], uint64(i))
		sum := sha256.Sum256(seed[:])
		path := fmt.Sprintf("/usr/lib/x86_64-linux-gnu/package-%d/lib%d.so.1", i%977, i)
		e, err := ima.NewEntry(ima.TemplateIMANG, nil, 10, ima.DigestNG(ima.HashSHA256, sum[:]), ima.NameNG(path))
		if err != nil {
			b.Fatal(err)
		}
		list = ima.AppendASCII(list, e)
		p.Digests.Set(path, []string{fmt.Sprintf("%x", sum)})
		v1 = pcr.Extend(pcr.SHA1, v1, e.TemplateDigest(pcr.SHA1))
		v256 = pcr.Extend(pcr.SHA256, v256, e.TemplateDigest(pcr.SHA256))
	}
	c, err := runtimepolicy.Compile(bytes.NewReader(p.Marshal()), runtimepolicy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return list, c, pcr.Set{pcr.SHA1: {10: v1}, pcr.SHA256: {10: v256}}
}

// BenchmarkVerify: a whole 100,000-entry ascii list, policy holding every
// digest, two banks checked against their PCR 10.
func BenchmarkVerify(b *testing.B) {
	const n = 100000
	list, rp, q := benchList(b, n)
	p, err := NewPolicy(Options{RuntimePolicy: rp})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(list)))
	b.ReportAllocs()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	for b.Loop() {
		rep, _, err := p.Verify(nil, Round{Entries: ima.ScanList(bytes.NewReader(list), ima.ReaderOptions{}), Quoted: q})
		if err != nil || !rep.Pass() || !rep.Matched {
			b.Fatalf("%v %+v", err, rep)
		}
	}
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/float64(b.N), "ns/entry")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(n)/float64(b.N), "allocs/entry")
}

// BenchmarkVerifyASCII: the same list as ascii text through Round.List,
// as imago verify reads a file: lines split by the reader, parsed,
// hashed and judged on every core, replayed per bank.
func BenchmarkVerifyASCII(b *testing.B) {
	const n = 100000
	list, rp, q := benchList(b, n)
	p, err := NewPolicy(Options{RuntimePolicy: rp})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(list)))
	b.ReportAllocs()
	m := cputime.Start()
	for b.Loop() {
		rep, _, err := p.Verify(nil, Round{List: bytes.NewReader(list), Quoted: q})
		if err != nil || !rep.Pass() || !rep.Matched || rep.Read != n {
			b.Fatalf("%v %+v", err, rep)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/float64(b.N), "ns/entry")
	m.Report(b, float64(n)*float64(b.N), "entry")
}

// BenchmarkRound: an incremental round of 10 new entries with a quote, as
// the attestation service runs one per node.
func BenchmarkRound(b *testing.B) {
	list, rp, _ := benchList(b, 20)
	p, err := NewPolicy(Options{RuntimePolicy: rp})
	if err != nil {
		b.Fatal(err)
	}
	var es []*ima.Entry
	for e, err := range ima.NewASCIIReader(bytes.NewReader(list), ima.ReaderOptions{}).All() {
		if err != nil {
			b.Fatal(err)
		}
		es = append(es, e)
	}
	rep, st, err := p.Verify(nil, Round{Entries: Entries(es[:10])})
	if err != nil || !rep.Pass() {
		b.Fatal(err)
	}
	q := pcr.Set{}
	for _, v := range st.PCRs {
		bk, _ := pcr.ParseBank(v.Bank)
		val := make([]byte, bk.Size())
		fmt.Sscanf(v.Value, "%x", &val)
		q.Put(bk, v.PCR, val)
	}
	for _, e := range es[10:] {
		q[pcr.SHA1][10] = pcr.Extend(pcr.SHA1, q[pcr.SHA1][10], e.TemplateDigest(pcr.SHA1))
		q[pcr.SHA256][10] = pcr.Extend(pcr.SHA256, q[pcr.SHA256][10], e.TemplateDigest(pcr.SHA256))
	}
	b.ReportAllocs()
	for b.Loop() {
		rep, _, err := p.Verify(st, Round{Entries: Entries(es[10:]), Quoted: q})
		if err != nil || !rep.Pass() || rep.Consumed != 10 {
			b.Fatalf("%v %+v", err, rep)
		}
	}
}
