package runtimepolicy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxLineLen bounds one line of an allowlist or exclude list.
const MaxLineLen = 64 << 10

// KeyringPrefix marks a keyring line of a legacy allowlist:
// "<hex>  %keyring:.ima" lists a key allowed on the .ima keyring.
const KeyringPrefix = "%keyring:"

// Allowlist is what a legacy allowlist lists.
type Allowlist struct {
	Digests  *DigestMap
	Keyrings *DigestMap
}

// ReadAllowlist reads a legacy allowlist: lines "<hex> <path>" as
// sha1sum, sha256sum, ... print them (one or more blanks between; a '*'
// before the path, sha256sum's binary mode, is dropped; sha256sum's
// backslash-escaped form is unescaped; the BSD form "SHA256 (path) = hex"
// is read too). A path "%keyring:<name>" lists a key digest for keyring
// <name>. Spaces in paths become '_', as IMA writes them
// (keylime-policy create). Blank lines are skipped; anything else that does
// not parse, or a digest that is not 40-128 lower-case hex digits, is a
// *FormatError naming the line.
func ReadAllowlist(r io.Reader) (*Allowlist, error) {
	a := &Allowlist{Digests: NewDigestMap(), Keyrings: NewDigestMap()}
	err := eachLine(r, func(n int, line string) error {
		line = strings.TrimSpace(line)
		if line == "" {
			return nil
		}
		sum, path, err := allowlistLine(line)
		if err != nil {
			return &FormatError{Line: n, Err: err}
		}
		if err := checkHex(sum); err != nil {
			return &FormatError{Line: n, Err: err}
		}
		if name, ok := strings.CutPrefix(path, KeyringPrefix); ok {
			a.Keyrings.Add(name, sum)
			return nil
		}
		a.Digests.Add(strings.ReplaceAll(path, " ", "_"), sum)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

func allowlistLine(line string) (sum, path string, err error) {
	// BSD tag form: ALG (path) = hex.
	if i := strings.Index(line, " ("); i > 0 && !strings.ContainsAny(line[:i], " \t") {
		if j := strings.LastIndex(line, ") = "); j > i {
			return line[j+4:], line[i+2 : j], nil
		}
	}
	escaped := strings.HasPrefix(line, `\`)
	if escaped {
		line = line[1:]
	}
	i := strings.IndexAny(line, " \t")
	if i < 0 {
		return "", "", errors.New("want '<hex digest> <path>'")
	}
	sum, path = line[:i], strings.TrimLeft(line[i:], " \t")
	if path == "" {
		return "", "", errors.New("want '<hex digest> <path>'")
	}
	path = strings.TrimPrefix(path, "*")
	if escaped {
		path = strings.NewReplacer(`\\`, `\`, `\n`, "\n", `\r`, "\r").Replace(path)
	}
	return sum, path, nil
}

// ReadExcludeList reads an exclude list: one regular expression a line,
// blank lines and lines starting with '#' skipped (Keylime's
// convert_runtime_policy). Every pattern must compile (*ExcludeError with
// its line number as Index).
func ReadExcludeList(r io.Reader) ([]string, error) {
	var out []string
	err := eachLine(r, func(n int, line string) error {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			return nil
		}
		if _, err := CompileExcludes([]string{line}); err != nil {
			var xe *ExcludeError
			if errors.As(err, &xe) {
				return &FormatError{Line: n, Err: fmt.Errorf("%q cannot be compiled (Go's RE2 syntax): %v", line, xe.Err)}
			}
			return err
		}
		out = append(out, line)
		return nil
	})
	return out, err
}

// eachLine calls f for each line (without its end of line) and its
// 1-based number; a line longer than MaxLineLen is a *FormatError.
func eachLine(r io.Reader, f func(n int, line string) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for n := 1; ; n++ {
		buf = buf[:0]
		for {
			chunk, err := br.ReadSlice('\n')
			if len(buf)+len(chunk) > MaxLineLen {
				return &FormatError{Line: n, Err: fmt.Errorf("line longer than %d bytes", MaxLineLen)}
			}
			buf = append(buf, chunk...)
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil && err != io.EOF {
				return err
			}
			if len(buf) == 0 && err == io.EOF {
				return nil
			}
			line := string(bytes.TrimRight(buf, "\r\n"))
			if e := f(n, line); e != nil {
				return e
			}
			if err == io.EOF {
				return nil
			}
			break
		}
	}
}

// FromAllowlist makes a policy of an allowlist and an exclude list, as
// Keylime's convert_runtime_policy does: generator LegacyAllowList,
// log_hash_alg sha1, the given timestamp.
func FromAllowlist(a *Allowlist, excludes []string, timestamp string) *Policy {
	p := New()
	p.Meta.Generator = GeneratorLegacyAllowList
	p.Meta.Timestamp = timestamp
	p.Digests.Merge(a.Digests)
	p.Keyrings.Merge(a.Keyrings)
	p.Excludes = append(p.Excludes, excludes...)
	return p
}
