package sdnotify

import (
	"errors"
	"net"
	"path/filepath"
	"testing"
)

func TestNotify(t *testing.T) {
	if err := Notify("", Ready); !errors.Is(err, ErrNoSocket) {
		t.Fatalf("empty socket: %v, want ErrNoSocket", err)
	}
	path := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := Notify(path, Ready+"\nSTATUS=initialised"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	n, err := l.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); got != "READY=1\nSTATUS=initialised" {
		t.Fatalf("got %q", got)
	}
}
