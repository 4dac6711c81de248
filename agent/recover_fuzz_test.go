package agent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/journal"
)

// validPrefix is two acknowledged records: a bypass aggregate and a file.
func validPrefix(tb testing.TB) []byte {
	tb.Helper()
	t, _ := ima.LookupTemplate("ima-ng")
	var out []byte
	for _, ev := range []event{
		{Name: BootAggregate, Alg: ima.HashSHA256, Digest: make([]byte, 32)},
		{Name: "/etc/hostname", Alg: ima.HashSHA256, Digest: bytes.Repeat([]byte{7}, 32), File: true},
	} {
		e, err := buildEntry(t, &ev, 10, binary.NativeEndian)
		if err != nil {
			tb.Fatal(err)
		}
		if out, err = appendBinary(out, e, e.Digest, binary.NativeEndian); err != nil {
			tb.Fatal(err)
		}
	}
	return out
}

// FuzzRecoverList appends arbitrary bytes (a torn or garbage tail) to a
// list of acknowledged records and reads it back as a restart does: no
// panic; either the file is refused as damaged (ErrCorrupt) and left
// byte for byte as it was, or the acknowledged records all stay and, once
// a torn tail is cut, the file is exactly the whole valid records kept.
func FuzzRecoverList(f *testing.F) {
	prefix := validPrefix(f)
	f.Add([]byte{})
	f.Add(prefix[:30])
	f.Add(prefix[len(prefix)/2:])
	f.Add(make([]byte, 120))
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Add(append([]byte{0x0a}, prefix...))
	f.Fuzz(func(t *testing.T, tail []byte) {
		path := filepath.Join(t.TempDir(), listFile)
		orig := append(bytes.Clone(prefix), tail...)
		if err := os.WriteFile(path, orig, 0o600); err != nil {
			t.Fatal(err)
		}
		j, err := journal.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		a := &Agent{list: j, order: binary.NativeEndian, log: slog.New(slog.DiscardHandler)}
		sc, err := a.scan(j, false)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatal(err)
			}
			if kept, _ := os.ReadFile(path); !bytes.Equal(kept, orig) {
				t.Fatalf("a refused file was changed")
			}
			return
		}
		if len(sc.entries) < 2 {
			t.Fatalf("acknowledged records dropped: %d kept", len(sc.entries))
		}
		if err := a.cutTorn(j, sc); err != nil {
			t.Fatal(err)
		}
		kept, _ := os.ReadFile(path)
		if !bytes.HasPrefix(kept, prefix) || int64(len(kept)) != j.Size() {
			t.Fatalf("kept %d bytes, size %d", len(kept), j.Size())
		}
		var again []byte
		for _, e := range sc.entries {
			if !validRecord(e) {
				t.Fatalf("invalid record kept")
			}
			again, _ = appendBinary(again, e, e.Digest, binary.NativeEndian)
		}
		if !bytes.Equal(again, kept) {
			t.Fatalf("kept bytes are not the kept records")
		}
	})
}

// records returns three acknowledged records (a bypass aggregate and two
// files) one by one.
func records(tb testing.TB) [][]byte {
	tb.Helper()
	t, _ := ima.LookupTemplate("ima-ng")
	var out [][]byte
	for _, ev := range []event{
		{Name: BootAggregate, Alg: ima.HashSHA256, Digest: make([]byte, 32)},
		{Name: "/etc/hostname", Alg: ima.HashSHA256, Digest: bytes.Repeat([]byte{7}, 32), File: true},
		{Name: "/etc/hosts", Alg: ima.HashSHA256, Digest: bytes.Repeat([]byte{8}, 32), File: true},
	} {
		e, err := buildEntry(t, &ev, 10, binary.NativeEndian)
		if err != nil {
			tb.Fatal(err)
		}
		rec, err := appendBinary(nil, e, e.Digest, binary.NativeEndian)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, rec)
	}
	return out
}

// TestScanDamage: one flipped bit anywhere in a record that good records
// follow is damage in the middle: refused (ErrCorrupt), the file left
// byte for byte (the old recovery cut the file at the damaged record and
// lost every confirmed record after it). A final record cut short, or
// zeros, is a torn final record; a whole final record that is damaged is
// refused unless a TPM is there to tell whether it was extended.
func TestScanDamage(t *testing.T) {
	recs := records(t)
	list := bytes.Join(recs, nil)
	try := func(data []byte, damagedFinalOK bool) (scanned, error) {
		path := filepath.Join(t.TempDir(), listFile)
		os.WriteFile(path, data, 0o600)
		j, err := journal.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		a := &Agent{order: binary.NativeEndian, log: slog.New(slog.DiscardHandler)}
		sc, err := a.scan(j, damagedFinalOK)
		if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
			t.Errorf("scan changed the file")
		}
		return sc, err
	}
	// Every bit of the first two records. A flipped PCR index that stays
	// in 0-23 is not covered by the record's own digest (a TPM replay
	// catches it); one outside is refused too.
	for bit := 0; bit < 8*(len(recs[0])+len(recs[1])); bit++ {
		data := bytes.Clone(list)
		data[bit/8] ^= 1 << (bit % 8)
		start := 0
		if bit/8 >= len(recs[0]) {
			start = len(recs[0])
		}
		if bit/8-start < 4 && binary.NativeEndian.Uint32(data[start:]) <= 23 {
			continue
		}
		sc, err := try(data, true)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("bit %d (byte %d): %v (%d entries, torn %v), want ErrCorrupt", bit, bit/8, err, len(sc.entries), sc.torn)
		}
	}
	last := recs[2]
	for name, tc := range map[string]struct {
		tail           []byte
		damagedFinalOK bool
		torn           bool
	}{
		"cut short":             {last[:len(last)-9], false, true},
		"header cut short":      {last[:10], false, true},
		"zeros":                 {make([]byte, len(last)), false, true},
		"damaged whole, no TPM": {flip(last, 40), false, false},
		"damaged whole, TPM":    {flip(last, 40), true, true},
	} {
		sc, err := try(append(bytes.Join(recs[:2], nil), tc.tail...), tc.damagedFinalOK)
		switch {
		case tc.torn && (err != nil || !sc.torn || len(sc.entries) != 2 || sc.good != int64(len(recs[0])+len(recs[1]))):
			t.Errorf("%s: %v torn=%v entries=%d", name, err, sc.torn, len(sc.entries))
		case !tc.torn && !errors.Is(err, ErrCorrupt):
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

func flip(b []byte, byteIdx int) []byte {
	c := bytes.Clone(b)
	c[byteIdx] ^= 0x10
	return c
}
