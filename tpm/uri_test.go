package tpm

import (
	"errors"
	"testing"
)

func TestParseURI(t *testing.T) {
	tests := []struct {
		uri  string
		kind kind
		addr string
		bad  bool
	}{
		{"", kindAuto, "", false},
		{"auto", kindAuto, "", false},
		{"none", kindNone, "", false},
		{"sim", kindSim, "", false},
		{"/dev/tpmrm0", kindDevice, "/dev/tpmrm0", false},
		{"/dev/tpm7", kindDevice, "/dev/tpm7", false},
		{"tcp://127.0.0.1:2321", kindTCP, "127.0.0.1:2321", false},
		{"tcp://[::1]:2321", kindTCP, "[::1]:2321", false},
		{"tcp://localhost:2321", kindTCP, "localhost:2321", false},
		{"unix:///run/swtpm/sock", kindUnix, "/run/swtpm/sock", false},
		{"tcp://127.0.0.1", 0, "", true},
		{"tcp://:2321", 0, "", true},
		{"tcp://host:1/x", 0, "", true},
		{"unix://relative/sock", 0, "", true},
		{"dev/tpm0", 0, "", true},
		{"tpmrm0", 0, "", true},
		{"Auto", 0, "", true},
		{"swtpm:host=127.0.0.1,port=2321", 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			tg, err := parseURI(tt.uri)
			if tt.bad {
				if !errors.Is(err, ErrBadURI) {
					t.Fatalf("parseURI(%q) = %+v, %v; want ErrBadURI", tt.uri, tg, err)
				}
				if !errors.Is(CheckURI(tt.uri), ErrBadURI) {
					t.Fatalf("CheckURI(%q) not ErrBadURI", tt.uri)
				}
				if _, err := Open(tt.uri); !errors.Is(err, ErrBadURI) {
					t.Fatalf("Open(%q) = %v, want ErrBadURI", tt.uri, err)
				}
				if Available(tt.uri) {
					t.Fatalf("Available(%q) = true", tt.uri)
				}
				return
			}
			if err != nil || tg.kind != tt.kind || tg.addr != tt.addr {
				t.Fatalf("parseURI(%q) = %+v, %v; want kind %d addr %q", tt.uri, tg, err, tt.kind, tt.addr)
			}
		})
	}
}
