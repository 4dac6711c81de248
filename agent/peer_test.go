//go:build linux

package agent

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imago-ima/imago/internal/testenv"
)

// clientAs runs this test binary as a client with uid and gid 65534
// (nobody) and returns the error code its QueryStatus got.
func clientAs(t *testing.T, socket string) string {
	t.Helper()
	testenv.Root(t, "running a client as another uid")
	dir, err := os.MkdirTemp("", "imago-client")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "client")
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(bin, os.O_WRONLY|os.O_CREATE, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(dst, src)
	src.Close()
	dst.Close()
	cc, _ := json.Marshal(childConfig{Client: socket})
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(cc))
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestRefusedPeer: a client the agent does not admit is told it was
// refused (CodeRefused, ErrRefused), both when the socket's permissions
// keep it out and when the agent checks its uid itself. Before, both read
// as "no agent is listening".
func TestRefusedPeer(t *testing.T) {
	cfg, logs := testConfig(t, "none")
	startAgent(t, cfg, logs)
	if got := clientAs(t, cfg.Socket); got != string(CodeRefused) {
		t.Errorf("a uid kept out by the socket's mode: %s, want %s", got, CodeRefused)
	}
	os.Chmod(filepath.Dir(cfg.Socket), 0o755)
	os.Chmod(cfg.Socket, 0o666)
	if got := clientAs(t, cfg.Socket); got != string(CodeRefused) {
		t.Errorf("a uid the agent refuses: %s, want %s", got, CodeRefused)
	}
	if !strings.Contains(logs.String(), "refused a client") {
		t.Error("the refusal is not logged")
	}
}

// TestOutOfFileDescriptors: the agent runs with few file descriptors and
// idle clients take them all. accept fails (EMFILE); the agent pauses,
// keeps the connections it has, and serves again once they close. Before,
// the failed accept ended the agent.
func TestOutOfFileDescriptors(t *testing.T) {
	cfg, _ := testConfig(t, "none")
	logPath := filepath.Join(t.TempDir(), "agent.log")
	cmd, exited := startChild(t, childConfig{TPM: "none", StateDir: cfg.StateDir, RuntimeDir: cfg.RuntimeDir, Socket: cfg.Socket, Log: logPath, NoFile: 32})
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
	})
	status := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		_, err := QueryStatus(ctx, cfg.Socket)
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for status(time.Second) != nil {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("the agent did not come up\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var idle []net.Conn
	for range 48 {
		c, err := net.Dial("unix", cfg.Socket)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		log, _ := os.ReadFile(logPath)
		if strings.Contains(string(log), "too many open files") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no accept failure in the log: the test did not exhaust the agent's descriptors\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range idle {
		c.Close()
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		err := status(2 * time.Second)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("the agent does not serve again: %v\n%s", err, log)
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("the agent exited: %v\n%s", err, log)
		default:
		}
	}
}
