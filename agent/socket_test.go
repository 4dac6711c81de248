package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNonUTF8Path: a name that is not UTF-8 is measured as that file. Two
// files differ only in one byte of their names: 0xE9 (Latin-1 é) and
// U+FFFD as UTF-8. Before, the request carried the path as a JSON string,
// the byte became U+FFFD on the wire, and the other file was measured.
// The oracle is the SHA-256 of each file's content.
func TestNonUTF8Path(t *testing.T) {
	cfg, logs := testConfig(t, "none")
	r := startAgent(t, cfg, logs)
	dir := t.TempDir()
	latin1 := filepath.Join(dir, "caf\xe9")
	replaced := filepath.Join(dir, "caf\uFFFD")
	if err := os.WriteFile(latin1, []byte("the latin-1 file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(replaced, []byte("the other file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := r.measure(latin1)
	want := sha256.Sum256([]byte("the latin-1 file\n"))
	if res[0].Status != StatusMeasured || res[0].Digest != "sha256:"+hex.EncodeToString(want[:]) {
		t.Fatalf("measure %q: %+v, want the digest of its content %x", latin1, res[0], want)
	}
	if res[0].Name != latin1 || res[0].Path != latin1 {
		t.Errorf("name %q, path %q, want %q", res[0].Name, res[0].Path, latin1)
	}
	r.stop()
	list := readListFile(t, filepath.Join(cfg.StateDir, listFile))
	if got := entryName(list[len(list)-1]); got != latin1 {
		t.Errorf("listed as %q, want %q", got, latin1)
	}
	// The wire form, and the JSON `imago measure --json` prints: bytes as
	// {"hex": ...}.
	b, _ := json.Marshal(res[0])
	if !strings.Contains(string(b), `"path":{"hex":"`+hex.EncodeToString([]byte(latin1))+`"}`) {
		t.Errorf("JSON %s", b)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil || back != res[0] {
		t.Errorf("JSON round trip: %+v %v", back, err)
	}
	// A string that is not UTF-8, or a lone surrogate, is refused rather
	// than turned into another name.
	for _, bad := range []string{"\"caf\xe9\"", `"caf\udce9"`} {
		var p Bytes
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("%s decoded as %q", bad, p)
		}
	}
}

// rawCall sends line on a new connection and returns the answer.
func rawCall(t *testing.T, socket string, line []byte) response {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	go c.Write(line) // the agent may answer before reading it all
	ans, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	var resp response
	if err := json.Unmarshal(ans, &resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestSocketErrorCodes: errors carry a code that the client matches with
// errors.Is: a request longer than the limit is told so (before: "bad
// request: unexpected end of JSON input"), a bad request is a bad request,
// and a path too long for any request is refused by the client itself.
func TestSocketErrorCodes(t *testing.T) {
	cfg, logs := testConfig(t, "none")
	startAgent(t, cfg, logs)
	long := append([]byte(`{"op":"measure","paths":["/`), bytes.Repeat([]byte("a"), 2*MaxRequest)...)
	long = append(long, "\"]}\n"...)
	if resp := rawCall(t, cfg.Socket, long); resp.Code != CodeTooLong {
		t.Errorf("an over-long request: %+v", resp)
	}
	if resp := rawCall(t, cfg.Socket, []byte("{\"op\":\"fly\"}\n")); resp.Code != CodeBadRequest {
		t.Errorf("an unknown op: %+v", resp)
	}
	if resp := rawCall(t, cfg.Socket, []byte("not json\n")); resp.Code != CodeBadRequest {
		t.Errorf("not JSON: %+v", resp)
	}
	_, err := MeasurePaths(context.Background(), cfg.Socket, []string{"/" + strings.Repeat("x", MaxRequest)})
	if !errors.Is(err, ErrTooLong) {
		t.Errorf("MeasurePaths with a path longer than a request: %v", err)
	}
	// Many paths go in several requests.
	dir := t.TempDir()
	var paths []string
	for i := range MaxPaths + 10 {
		paths = append(paths, filepath.Join(dir, fmt.Sprint(i)))
	}
	res, err := MeasurePaths(context.Background(), cfg.Socket, paths)
	if err != nil || len(res) != len(paths) || !errors.Is(res[0].Err(), ErrUnreadable) {
		t.Fatalf("%d results, %v", len(res), err)
	}
	// Nothing listens: ErrNotRunning.
	if _, err := QueryStatus(context.Background(), filepath.Join(dir, "none.sock")); !errors.Is(err, ErrNotRunning) {
		t.Errorf("no agent: %v", err)
	}
}

// TestSocketIsAFile: --socket naming a regular file (or a directory) is
// refused and the file left as it is. Before, the agent deleted whatever
// was at the path.
func TestSocketIsAFile(t *testing.T) {
	cfg, _ := testConfig(t, "none")
	if err := os.WriteFile(cfg.Socket, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), cfg)
	if !errors.Is(err, ErrSocketPath) {
		t.Fatalf("Run with --socket on a regular file: %v", err)
	}
	if b, _ := os.ReadFile(cfg.Socket); string(b) != "precious\n" {
		t.Fatalf("the file at --socket was changed: %q", b)
	}
}

// TestSecondAgentSameSocket: a second agent (its own state directory) on a
// live agent's socket is refused, and the first keeps its socket. Before,
// the second removed the socket and listened on the path itself.
func TestSecondAgentSameSocket(t *testing.T) {
	cfg, logs := testConfig(t, "none")
	startAgent(t, cfg, logs)
	cfg2, _ := testConfig(t, "none")
	cfg2.Socket = cfg.Socket
	if a, err := New(context.Background(), cfg2); !errors.Is(err, ErrSocketInUse) {
		if err == nil {
			a.Close()
		}
		t.Fatalf("a second agent on the socket: %v", err)
	}
	st, err := QueryStatus(context.Background(), cfg.Socket)
	if err != nil || st.Entries != 1 {
		t.Fatalf("the first agent: %+v %v", st, err)
	}
}

// TestShutdownClosesIdleConnections: connections that never send a request
// do not hold up a stop. Before, Serve waited for them up to the 5-minute
// request deadline.
func TestShutdownClosesIdleConnections(t *testing.T) {
	cfg, logs := testConfig(t, "none")
	r := startAgent(t, cfg, logs)
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("unix", cfg.Socket)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	r.status() // the idle connections are accepted by now
	done := make(chan error, 1)
	go func() { done <- r.stop() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the agent did not stop with idle connections open")
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Errorf("an idle connection was not closed: %d %v", n, err)
		}
	}
}

// TestConnectionsPerUID: one uid holds at most MaxConnsPerUID connections;
// the next one is told it is busy (ErrBusy), and served again once one
// closes. Before, every connection was taken, until the agent ran out of
// file descriptors.
func TestConnectionsPerUID(t *testing.T) {
	cfg, logs := testConfig(t, "none")
	cfg.MaxConnsPerUID = 4
	startAgent(t, cfg, logs)
	var conns []net.Conn
	for range 4 {
		c, err := net.Dial("unix", cfg.Socket)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	// Once the agent has taken the four idle connections, a fifth is
	// told it is busy.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := QueryStatus(context.Background(), cfg.Socket)
		if errors.Is(err, ErrBusy) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("a fifth connection: %v, want ErrBusy", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	conns[0].Close()
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, err := QueryStatus(context.Background(), cfg.Socket)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrBusy) || time.Now().After(deadline) {
			t.Fatalf("after closing one: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
