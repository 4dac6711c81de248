package tpm

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestFindDevice builds a fake /dev whose "TPM nodes" are symlinks to the
// real character device /dev/null (os.Stat follows them), plus decoys.
func TestFindDevice(t *testing.T) {
	if !isCharDevice("/dev/null") {
		t.Fatal("/dev/null is not a character device")
	}
	tests := []struct {
		name  string
		chars []string // symlinks to /dev/null
		files []string // regular files
		want  string   // "" means ErrNoTPM
	}{
		{"empty", nil, nil, ""},
		{"rm-before-raw", []string{"tpm0", "tpmrm3"}, nil, "tpmrm3"},
		{"lowest-rm-numeric", []string{"tpmrm12", "tpmrm2", "tpmrm10"}, nil, "tpmrm2"},
		{"late-chip-raw-only", []string{"tpm5"}, nil, "tpm5"},
		{"lowest-raw-numeric", []string{"tpm11", "tpm3"}, nil, "tpm3"},
		{"regular-files-ignored", []string{"tpm4"}, []string{"tpmrm0", "tpm0"}, "tpm4"},
		{"only-regular-files", nil, []string{"tpmrm0", "tpm0"}, ""},
		{"decoy-names", []string{"tpmrmx", "tpm", "tpmrm", "tpm+1", "tpm-1", "tpmrm0a", "mytpm0", "tpm1"}, nil, "tpm1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, n := range tt.chars {
				if err := os.Symlink("/dev/null", filepath.Join(dir, n)); err != nil {
					t.Fatal(err)
				}
			}
			for _, n := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := findDevice(dir)
			if tt.want == "" {
				if !errors.Is(err, ErrNoTPM) {
					t.Fatalf("findDevice = %q, %v; want ErrNoTPM", got, err)
				}
				return
			}
			if err != nil || got != filepath.Join(dir, tt.want) {
				t.Fatalf("findDevice = %q, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func hostHasTPMNode(t *testing.T) bool {
	t.Helper()
	_, err := findDevice(devDir)
	return err == nil
}

// TestOpenAuto: on a machine without /dev/tpm* nodes, auto is ErrNoTPM
// and Available("auto") is false; with one, auto is not ErrNoTPM.
func TestOpenAuto(t *testing.T) {
	has := hostHasTPMNode(t)
	for _, uri := range []string{"auto", ""} {
		tp, err := Open(uri)
		if tp != nil {
			tp.Close()
		}
		if errors.Is(err, ErrNoTPM) == has {
			t.Errorf("Open(%q) = %v with a TPM node %v", uri, err, has)
		}
		if Available(uri) != has {
			t.Errorf("Available(%q) = %v with a TPM node %v", uri, !has, has)
		}
	}
}
