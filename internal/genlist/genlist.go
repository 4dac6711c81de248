// Package genlist writes synthetic ima-ng measurement lists and the PCR 10
// values they replay to, for benchmarks and as a second, independent
// implementation for tests: it uses only the standard library (never the
// module's ima or pcr packages), so a replay bug there cannot hide here.
//
// A list of n entries starts with a boot_aggregate entry and goes on with
// made-up library paths, each with the sha256 digest of its own name as the
// file digest (ima-ng, sha256 file digests, SHA-1 template digests, PCR
// 10, little-endian as x86 and arm64 kernels write it). Violations are
// entries with a zero template digest, extended as 0xFF in every bank.
package genlist

import (
	"bufio"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// Options choose the list's content.
type Options struct {
	// Seed makes the names and the violation positions; the same seed
	// gives the same list.
	Seed uint64
	// Violations is the number of violation entries, placed at random
	// after the boot aggregate.
	Violations int
}

// PCRs is PCR 10 after the list, per bank name ("sha1", "sha256").
type PCRs map[string][]byte

// Generate writes n entries in the kernel's binary form to bin and its
// ascii form to ascii (either may be nil) and returns PCR 10 for the sha1
// and sha256 banks.
func Generate(bin, ascii io.Writer, n int, o Options) (PCRs, error) {
	if n < 1 {
		return nil, errors.New("genlist: need at least one entry (the boot aggregate)")
	}
	if o.Violations < 0 || o.Violations > n-1 {
		return nil, fmt.Errorf("genlist: %d violations do not fit after the boot aggregate in %d entries", o.Violations, n)
	}
	rnd := rand.New(rand.NewPCG(o.Seed, 0x696d61676f))
	viol := map[int]bool{}
	for len(viol) < o.Violations {
		viol[1+rnd.IntN(n-1)] = true
	}
	pcr := map[string][]byte{"sha1": make([]byte, sha1.Size), "sha256": make([]byte, sha256.Size)}
	newHash := map[string]func() hash.Hash{"sha1": sha1.New, "sha256": sha256.New}
	var rec, td []byte
	for i := range n {
		var name string
		var fd [32]byte
		if i == 0 {
			name = "boot_aggregate"
			fd = sha256.Sum256(fmt.Appendf(nil, "synthetic boot aggregate %d", o.Seed))
		} else {
			name = fmt.Sprintf("/usr/lib/synthetic/%06d/%010x.so", i/100, rnd.Uint64()>>24)
			fd = sha256.Sum256([]byte(name))
		}
		// ima-ng template data: d-ng ("sha256:" NUL digest) and n-ng (name
		// NUL), each behind its little-endian u32 length.
		td = td[:0]
		td = binary.LittleEndian.AppendUint32(td, uint32(len("sha256:")+1+len(fd)))
		td = append(td, "sha256:\x00"...)
		td = append(td, fd[:]...)
		td = binary.LittleEndian.AppendUint32(td, uint32(len(name)+1))
		td = append(td, name...)
		td = append(td, 0)
		var listed []byte
		ext := map[string][]byte{}
		if viol[i] {
			listed = make([]byte, sha1.Size)
			ext["sha1"] = bytesOf(0xff, sha1.Size)
			ext["sha256"] = bytesOf(0xff, sha256.Size)
		} else {
			s1 := sha1.Sum(td)
			s256 := sha256.Sum256(td)
			listed = s1[:]
			ext["sha1"], ext["sha256"] = s1[:], s256[:]
		}
		for alg, v := range pcr {
			h := newHash[alg]()
			h.Write(v)
			h.Write(ext[alg])
			pcr[alg] = h.Sum(nil)
		}
		if bin != nil {
			rec = rec[:0]
			rec = binary.LittleEndian.AppendUint32(rec, 10)
			rec = append(rec, listed...)
			rec = binary.LittleEndian.AppendUint32(rec, uint32(len("ima-ng")))
			rec = append(rec, "ima-ng"...)
			rec = binary.LittleEndian.AppendUint32(rec, uint32(len(td)))
			rec = append(rec, td...)
			if _, err := bin.Write(rec); err != nil {
				return nil, err
			}
		}
		if ascii != nil {
			if _, err := fmt.Fprintf(ascii, "10 %x ima-ng sha256:%x %s\n", listed, fd, name); err != nil {
				return nil, err
			}
		}
	}
	return pcr, nil
}

func bytesOf(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

// WriteDir writes a list of n entries into dir as securityfs and evmctl
// name them: binary_runtime_measurements, ascii_runtime_measurements,
// expected.json ({"sha1": {"10": hex}, "sha256": {"10": hex}}, the JSON
// form `imago log check --pcrs` reads) and pcrs-sha1.txt, pcrs-sha256.txt
// (evmctl's "PCR-NN: HEX" form, the other PCRs zero).
func WriteDir(dir string, n int, o Options) (PCRs, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var pcrs PCRs
	err := withFiles(dir, func(bin, ascii io.Writer) error {
		var err error
		pcrs, err = Generate(bin, ascii, n, o)
		return err
	})
	if err != nil {
		return nil, err
	}
	js := map[string]map[string]string{}
	for alg, v := range pcrs {
		js[alg] = map[string]string{"10": hex.EncodeToString(v)}
		var b strings.Builder
		for k := range 24 {
			val := v
			if k != 10 {
				val = make([]byte, len(v))
			}
			fmt.Fprintf(&b, "PCR-%02d: %s\n", k, strings.ToUpper(hex.EncodeToString(val)))
		}
		if err := os.WriteFile(filepath.Join(dir, "pcrs-"+alg+".txt"), []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
	}
	data, err := json.Marshal(js)
	if err != nil {
		return nil, err
	}
	return pcrs, os.WriteFile(filepath.Join(dir, "expected.json"), append(data, '\n'), 0o644)
}

func withFiles(dir string, fn func(bin, ascii io.Writer) error) error {
	fb, err := os.Create(filepath.Join(dir, "binary_runtime_measurements"))
	if err != nil {
		return err
	}
	defer fb.Close()
	fa, err := os.Create(filepath.Join(dir, "ascii_runtime_measurements"))
	if err != nil {
		return err
	}
	defer fa.Close()
	bb, ba := bufio.NewWriterSize(fb, 1<<20), bufio.NewWriterSize(fa, 1<<20)
	if err := fn(bb, ba); err != nil {
		return err
	}
	for _, e := range []error{bb.Flush(), ba.Flush(), fb.Close(), fa.Close()} {
		if e != nil {
			return e
		}
	}
	return nil
}
