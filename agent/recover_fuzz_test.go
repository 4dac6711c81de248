package agent

import (
	"bytes"
	"encoding/binary"
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
// list of acknowledged records and recovers it: no panic, the acknowledged
// records always stay, and what is kept is whole valid records only.
func FuzzRecoverList(f *testing.F) {
	prefix := validPrefix(f)
	f.Add([]byte{})
	f.Add(prefix[:30])
	f.Add(prefix[len(prefix)/2:])
	f.Add(make([]byte, 120))
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, tail []byte) {
		path := filepath.Join(t.TempDir(), listFile)
		if err := os.WriteFile(path, append(bytes.Clone(prefix), tail...), 0o600); err != nil {
			t.Fatal(err)
		}
		j, err := journal.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		a := &Agent{list: j, order: binary.NativeEndian, log: slog.New(slog.DiscardHandler)}
		entries, err := a.readList()
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) < 2 {
			t.Fatalf("acknowledged records dropped: %d kept", len(entries))
		}
		kept, _ := os.ReadFile(path)
		if !bytes.HasPrefix(kept, prefix) || int64(len(kept)) != j.Size() {
			t.Fatalf("kept %d bytes, size %d", len(kept), j.Size())
		}
		var again []byte
		for _, e := range entries {
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
