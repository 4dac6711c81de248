//go:build linux

package gate_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imago-ima/imago/gate"
	"github.com/imago-ima/imago/internal/gatetest"
)

// funcHandler adapts functions to gate.Handler.
type funcHandler struct {
	decide func(ev *gate.Event) gate.Verdict
	mu     sync.Mutex
	closed []gate.Kind
}

func (h *funcHandler) Decide(ev *gate.Event) gate.Verdict { return h.decide(ev) }
func (h *funcHandler) Closed(ev *gate.Event) {
	h.mu.Lock()
	h.closed = append(h.closed, ev.Kind)
	h.mu.Unlock()
}

func fdPath(fd int) string {
	p, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	return p
}

// script writes an executable shell script on dir.
func script(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// start runs a gate on mnt until the test ends.
func start(t *testing.T, cfg gate.Config) *gate.Gate {
	t.Helper()
	g, err := gate.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return g
}

// TestAllowDeny: the handler's verdict is what the exec gets; a denied exec
// fails with EPERM ("Operation not permitted", fanotify's FAN_DENY).
func TestAllowDeny(t *testing.T) {
	gatetest.RequireFanotify(t)
	mnt := gatetest.Mount(t, "tmpfs")
	ok, bad := script(t, mnt, "ok.sh"), script(t, mnt, "deny.sh")
	sh := gatetest.StartShell(t)
	h := &funcHandler{decide: func(ev *gate.Event) gate.Verdict {
		if ev.Kind == gate.Exec && strings.HasSuffix(fdPath(ev.Fd), "/deny.sh") {
			return gate.Deny
		}
		return gate.Allow
	}}
	g := start(t, gate.Config{Mounts: []string{mnt}, Handler: h, Opens: true, Closes: true})
	if m := g.Marks()[mnt]; m != "filesystem" {
		t.Errorf("mark %q, want filesystem (FAN_MARK_FILESYSTEM on tmpfs)", m)
	}
	sh.MustRun(ok)
	out, rc := sh.Run(bad)
	if rc == 0 || !strings.Contains(out, "not permitted") {
		t.Errorf("denied exec: rc %d, output %q; want EPERM", rc, out)
	}
	// Reading is an open, allowed; its close is seen.
	sh.MustRun("cat " + ok + " >/dev/null")
	st := g.Stats()
	if st.Denied != 1 || st.Allowed < 3 {
		t.Errorf("stats %+v: want 1 denied, >= 3 allowed", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		n := len(h.closed)
		h.mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			if n == 0 {
				t.Error("no close event seen")
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTimeout: a handler slower than Timeout does not hold the exec: it is
// answered by the failure policy (deny when FailClosed, else allow).
func TestTimeout(t *testing.T) {
	gatetest.RequireFanotify(t)
	for _, closed := range []bool{true, false} {
		t.Run(map[bool]string{true: "fail-closed", false: "fail-open"}[closed], func(t *testing.T) {
			mnt := gatetest.Mount(t, "tmpfs")
			p := script(t, mnt, "slow.sh")
			sh := gatetest.StartShell(t)
			release := make(chan struct{})
			h := &funcHandler{decide: func(ev *gate.Event) gate.Verdict {
				<-release
				return gate.Allow
			}}
			g := start(t, gate.Config{Mounts: []string{mnt}, Handler: h, Timeout: 200 * time.Millisecond, FailClosed: closed})
			defer close(release)
			t0 := time.Now()
			out, rc := sh.Run(p)
			if el := time.Since(t0); el > 3*time.Second {
				t.Errorf("exec took %v with a 200ms timeout", el)
			}
			if closed && (rc == 0 || !strings.Contains(out, "not permitted")) {
				t.Errorf("fail-closed: rc %d %q, want EPERM", rc, out)
			}
			if !closed && rc != 0 {
				t.Errorf("fail-open: rc %d %q, want success", rc, out)
			}
			if st := g.Stats(); st.TimedOut != 1 {
				t.Errorf("stats %+v: want 1 timed out", st)
			}
		})
	}
}

// TestQueueFull: with one worker busy and the queue full, the next event
// is answered at once by the failure policy.
func TestQueueFull(t *testing.T) {
	gatetest.RequireFanotify(t)
	mnt := gatetest.Mount(t, "tmpfs")
	var ps []string
	for i := range 3 {
		ps = append(ps, script(t, mnt, "q"+strconv.Itoa(i)+".sh"))
	}
	sh := gatetest.StartShell(t)
	release := make(chan struct{})
	busy := make(chan struct{}, 3)
	var once sync.Once
	h := &funcHandler{decide: func(ev *gate.Event) gate.Verdict {
		busy <- struct{}{}
		<-release
		return gate.Allow
	}}
	g := start(t, gate.Config{Mounts: []string{mnt}, Handler: h, Workers: 1, Queue: 1, Timeout: 20 * time.Second, FailClosed: true})
	defer once.Do(func() { close(release) })
	// One exec occupies the worker; then two more at once, in the
	// background: one waits in the queue, the other finds it full.
	run := func(i int) string {
		return "(" + ps[i] + " 2>/dev/null; echo r" + strconv.Itoa(i) + "=$? >>" + mnt + "/rc) & "
	}
	sh.MustRun(run(0) + "true")
	select {
	case <-busy:
	case <-time.After(10 * time.Second):
		t.Fatal("the first exec never reached the worker")
	}
	sh.MustRun(run(1) + run(2) + "true")
	deadline := time.Now().Add(10 * time.Second)
	for g.Stats().QueueFull == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	once.Do(func() { close(release) })
	sh.MustRun("wait")
	out := sh.MustRun("cat " + mnt + "/rc")
	if st := g.Stats(); st.QueueFull != 1 || st.Denied != 1 {
		t.Errorf("stats %+v: want 1 queue-full, 1 denied", st)
	}
	if n := strings.Count(out, "=0"); n != 2 {
		t.Errorf("exit statuses %q: want two successes and one failure", out)
	}
}

// TestSelf: the gate's own process is answered at once, even by a handler
// that would deny everything (the agent must never wait on itself).
func TestSelf(t *testing.T) {
	gatetest.RequireFanotify(t)
	mnt := gatetest.Mount(t, "tmpfs")
	p := script(t, mnt, "own.sh")
	h := &funcHandler{decide: func(*gate.Event) gate.Verdict { return gate.Deny }}
	g := start(t, gate.Config{Mounts: []string{mnt}, Handler: h, Opens: true})
	var wg sync.WaitGroup
	for range 4 { // from several threads
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := os.ReadFile(p); err != nil {
				t.Errorf("own read: %v", err)
			}
		}()
	}
	wg.Wait()
	if st := g.Stats(); st.Self < 4 || st.Denied != 0 {
		t.Errorf("stats %+v: want >= 4 self, 0 denied", st)
	}
}

// ignoreHandler ignores the opens (and read closes) of data.txt from its
// first open on, and unignores it on a close after writing.
type ignoreHandler struct {
	mu                  sync.Mutex
	opens, closeWrites  int
	closeNoWrites       int
	ignoreErr, unignErr error
}

func (h *ignoreHandler) Decide(ev *gate.Event) gate.Verdict {
	if ev.Kind == gate.Open && strings.HasSuffix(fdPath(ev.Fd), "/data.txt") {
		_, err := ev.Ignore(gate.Open, gate.CloseNoWrite)
		h.mu.Lock()
		h.opens++
		h.ignoreErr = err
		h.mu.Unlock()
	}
	return gate.Allow
}

func (h *ignoreHandler) Closed(ev *gate.Event) {
	if !strings.HasSuffix(fdPath(ev.Fd), "/data.txt") {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if ev.Kind == gate.CloseWrite {
		h.closeWrites++
		h.unignErr = ev.Unignore()
	} else {
		h.closeNoWrites++
	}
}

// TestIgnore: an ignore mark on an inode for Open and CloseNoWrite stops
// the kernel reporting its FAN_OPEN_PERM and FAN_CLOSE_NOWRITE (fanotify's
// FAN_MARK_IGNORED_MASK); a write clears it and the close after writing
// is still reported, where Unignore removes what is left; the next open is
// reported again.
func TestIgnore(t *testing.T) {
	gatetest.RequireFanotify(t)
	mnt := gatetest.Mount(t, "tmpfs")
	data := filepath.Join(mnt, "data.txt")
	os.WriteFile(data, []byte("x\n"), 0o644)
	sh := gatetest.StartShell(t)
	h := &ignoreHandler{}
	start(t, gate.Config{Mounts: []string{mnt}, Handler: h, Opens: true, Closes: true})
	for range 3 {
		sh.MustRun("cat " + data + " >/dev/null")
	}
	sh.MustRun("echo y >> " + data)
	time.Sleep(100 * time.Millisecond) // close events are asynchronous
	sh.MustRun("cat " + data + " >/dev/null")
	time.Sleep(100 * time.Millisecond)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ignoreErr != nil || h.unignErr != nil {
		t.Fatalf("Ignore: %v, Unignore: %v", h.ignoreErr, h.unignErr)
	}
	// Opens: the first cat and the cat after the write (the append's own
	// open was still ignored). Closes: only the close after writing (each
	// reported cat set the mark before its close).
	if h.opens != 2 || h.closeWrites != 1 || h.closeNoWrites != 0 {
		t.Errorf("opens %d, close_write %d, close_nowrite %d; want 2, 1, 0", h.opens, h.closeWrites, h.closeNoWrites)
	}
}
