// Command verifygen writes the inputs of bench/verify.sh: an ascii ima-ng
// measurement list of N entries (boot_aggregate first), a Keylime runtime
// policy holding every digest of it, and the list's PCR 10 in the sha1 and
// sha256 banks (evmctl's "PCR-10: hex" form).
//
// usage: go run ./bench/verifygen N DIR
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/runtimepolicy"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: verifygen N DIR")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "verifygen: N must be a positive number")
		os.Exit(2)
	}
	if err := run(n, os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "verifygen:", err)
		os.Exit(1)
	}
}

func run(n int, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "ascii_runtime_measurements"))
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	p := runtimepolicy.New()
	p.Meta.Generator = runtimepolicy.GeneratorLegacyAllowList
	v1, v256 := make([]byte, 20), make([]byte, 32)
	var line []byte
	var seed [8]byte
	for i := range n {
		var path string
		var sum [32]byte
		if i == 0 {
			path = "boot_aggregate"
			sum = sha256.Sum256([]byte("PCR0-9"))
		} else {
			path = fmt.Sprintf("/usr/lib/x86_64-linux-gnu/pkg%04d/lib%07d.so.%d", i%9973, i, i%7)
			binary.LittleEndian.PutUint64(seed[:], uint64(i))
			sum = sha256.Sum256(seed[:])
		}
		e, err := ima.NewEntry(ima.TemplateIMANG, nil, 10, ima.DigestNG(ima.HashSHA256, sum[:]), ima.NameNG(path))
		if err != nil {
			return err
		}
		line = ima.AppendASCII(line[:0], e)
		if _, err := w.Write(line); err != nil {
			return err
		}
		p.Digests.Set(path, []string{hex.EncodeToString(sum[:])})
		v1 = pcr.Extend(pcr.SHA1, v1, e.TemplateDigest(pcr.SHA1))
		v256 = pcr.Extend(pcr.SHA256, v256, e.TemplateDigest(pcr.SHA256))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.json"), p.Marshal(), 0o644); err != nil {
		return err
	}
	for _, b := range []struct {
		name string
		v    []byte
	}{{"sha1", v1}, {"sha256", v256}} {
		s := fmt.Sprintf("PCR-10: %X\n", b.v)
		if err := os.WriteFile(filepath.Join(dir, "pcrs-"+b.name+".txt"), []byte(s), 0o644); err != nil {
			return err
		}
	}
	return nil
}
