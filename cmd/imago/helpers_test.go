package main

import (
	"context"
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"time"

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

// startCLI runs `imago args...` (a long-running command: the agent, the
// verifier) in this process until the test ends, waiting until `imago
// probe...` exits 0; at the end it cancels it and wants status 0.
func startCLI(t *testing.T, args, probe []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() {
		var out, errb strings.Builder
		code := run(ctx, args, strings.NewReader(""), &out, &errb)
		done <- result{code, out.String(), errb.String()}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for runCLI(t, nil, probe...).code != 0 {
		select {
		case r := <-done:
			cancel()
			t.Fatalf("imago %s exited %d:\n%s", args[0], r.code, r.stderr)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("imago %s did not answer", args[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		cancel()
		if r := <-done; r.code != 0 {
			t.Errorf("imago %s exited %d after cancel:\n%s", args[0], r.code, r.stderr)
		}
	})
}
