package main

import (
	"encoding/binary"
	"os"
	"testing"

	"github.com/imago-ima/imago/ima"
)

func mustEntries(t *testing.T, path string) []*ima.Entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*ima.Entry
	for e, err := range ima.NewReader(f, ima.ReaderOptions{}).All() {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func appendBinary(e *ima.Entry, order binary.ByteOrder) ([]byte, error) {
	return ima.AppendBinary(nil, e, order)
}
