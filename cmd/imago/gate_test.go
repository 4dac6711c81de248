//go:build linux

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imago-ima/imago/internal/gatetest"
)

// TestAgentWatch: `imago agent --watch MOUNT --policy FILE` measures an exec
// on the watched filesystem before it runs; the ASCII export lists it with
// the file's SHA-256 (crypto/sha256 of its bytes).
func TestAgentWatch(t *testing.T) {
	gatetest.RequireFanotify(t)
	mnt := gatetest.Mount(t, "tmpfs")
	prog := filepath.Join(mnt, "hello.sh")
	os.WriteFile(prog, []byte("#!/bin/sh\necho hello\n"), 0o755)
	sum := sha256.Sum256([]byte("#!/bin/sh\necho hello\n"))
	pol := filepath.Join(t.TempDir(), "policy")
	os.WriteFile(pol, []byte("measure func=BPRM_CHECK\n"), 0o644)
	sh := gatetest.StartShell(t) // before marking: the test process never forks while watched
	args, runtime, socket := agentDirs(t)
	startAgentCLI(t, socket, append(args, "--tpm", "none", "--pcr", "11", "--watch", mnt, "--policy", pol)...)
	if out := sh.MustRun(prog); strings.TrimSpace(out) != "hello" {
		t.Errorf("output %q", out)
	}
	ascii, err := os.ReadFile(filepath.Join(runtime, "ascii_runtime_measurements"))
	if err != nil {
		t.Fatal(err)
	}
	want := "ima-ng sha256:" + hex.EncodeToString(sum[:]) + " " + prog
	if !strings.Contains(string(ascii), want) {
		t.Errorf("ascii export:\n%s\nwant a line with %q", ascii, want)
	}
	if r := runCLI(t, nil, "agent", "--watch", mnt, "--policy", "no-such-policy-file", "--tpm", "none"); r.code != 2 {
		t.Errorf("a missing policy file: exit %d, want 2\n%s", r.code, r.stderr)
	}
}

// TestAgentGateDies: the gate's reading loop fails while `imago agent
// --watch` runs (its fanotify descriptor broken for real). The agent stops
// with exit status 4 and says why, so that systemd restarts it. Before, it
// kept running and answering status as if healthy while the kernel allowed
// every access unmeasured.
func TestAgentGateDies(t *testing.T) {
	gatetest.RequireFanotify(t)
	mnt := gatetest.Mount(t, "tmpfs")
	args, _, socket := agentDirs(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	go func() {
		var out, errb strings.Builder
		code := run(ctx, append([]string{"agent", "--tpm", "none", "--pcr", "11", "--watch", mnt, "--policy", "tcb"}, args...),
			strings.NewReader(""), &out, &errb)
		done <- result{code, out.String(), errb.String()}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for runCLI(t, nil, "status", "--socket", socket).code != 0 {
		if time.Now().After(deadline) {
			t.Fatal("imago agent did not answer")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := gatetest.BreakFanotify(t); n != 1 {
		t.Fatalf("%d fanotify descriptors", n)
	}
	select {
	case r := <-done:
		if r.code != exitRestart || !strings.Contains(r.stderr, "the gate stopped") || !strings.Contains(r.stderr, "reading events") {
			t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the agent kept running with its gate dead")
	}
}
