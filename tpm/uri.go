package tpm

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
)

// ErrBadURI marks a --tpm value that is none of the accepted forms.
var ErrBadURI = errors.New("tpm: bad TPM URI")

// kind is the backend a URI names.
type kind int

const (
	kindAuto kind = iota
	kindDevice
	kindTCP
	kindUnix
	kindSim
	kindNone
)

// target is a parsed URI.
type target struct {
	kind kind
	addr string // device path, host:port or socket path
}

// parseURI parses the forms listed in the package documentation. The empty
// string means auto.
func parseURI(uri string) (target, error) {
	switch uri {
	case "", "auto":
		return target{kind: kindAuto}, nil
	case "none":
		return target{kind: kindNone}, nil
	case "sim":
		return target{kind: kindSim}, nil
	}
	switch {
	case strings.HasPrefix(uri, "tcp://"):
		hp := strings.TrimPrefix(uri, "tcp://")
		host, port, err := net.SplitHostPort(hp)
		if err != nil || host == "" || port == "" || strings.ContainsAny(hp, "/?#") {
			return target{}, fmt.Errorf("%w %q: want tcp://HOST:PORT", ErrBadURI, uri)
		}
		return target{kind: kindTCP, addr: hp}, nil
	case strings.HasPrefix(uri, "unix://"):
		p := strings.TrimPrefix(uri, "unix://")
		if !filepath.IsAbs(p) {
			return target{}, fmt.Errorf("%w %q: want unix:///ABSOLUTE/PATH", ErrBadURI, uri)
		}
		return target{kind: kindUnix, addr: p}, nil
	case strings.HasPrefix(uri, "/"):
		return target{kind: kindDevice, addr: filepath.Clean(uri)}, nil
	}
	return target{}, fmt.Errorf("%w %q: want auto, none, sim, a device path such as /dev/tpmrm0, tcp://HOST:PORT or unix:///PATH", ErrBadURI, uri)
}

// CheckURI reports whether uri is a well-formed TPM URI, without touching
// the TPM. The error wraps ErrBadURI.
func CheckURI(uri string) error {
	_, err := parseURI(uri)
	return err
}
