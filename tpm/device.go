package tpm

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// devDir is where auto looks for TPM nodes.
const devDir = "/dev"

// findDevice returns the TPM node auto would open in dir: the resource-manager
// node tpmrm<N> with the lowest N, else the raw node tpm<N> with the lowest N.
// Only character devices count; no N is assumed (a chip that registers late
// can get any number). It returns ErrNoTPM if there is none.
func findDevice(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoTPM, err)
	}
	type node struct {
		rm bool
		n  uint64
		p  string
	}
	var nodes []node
	for _, e := range ents {
		name := e.Name()
		rm := strings.HasPrefix(name, "tpmrm")
		var num string
		switch {
		case rm:
			num = name[len("tpmrm"):]
		case strings.HasPrefix(name, "tpm"):
			num = name[len("tpm"):]
		default:
			continue
		}
		n, err := strconv.ParseUint(num, 10, 32)
		if err != nil || num == "" || num[0] == '+' {
			continue
		}
		p := filepath.Join(dir, name)
		if !isCharDevice(p) {
			continue
		}
		nodes = append(nodes, node{rm, n, p})
	}
	if len(nodes) == 0 {
		return "", fmt.Errorf("%w: no tpmrm<N> or tpm<N> character device in %s", ErrNoTPM, dir)
	}
	best := slices.MinFunc(nodes, func(a, b node) int {
		if a.rm != b.rm {
			if a.rm {
				return -1
			}
			return 1
		}
		return int(a.n) - int(b.n)
	})
	return best.p, nil
}

// isCharDevice reports whether p (after following symlinks) is a character device.
func isCharDevice(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode()&fs.ModeCharDevice != 0
}
