package imago_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The pure core (formats, replay, boot aggregate, policy) does no I/O: it
// opens no file, device or socket, reads no clock, environment or
// randomness and does not log, so it gives the same answer for the same
// bytes on every machine (ARCHITECTURE.md, go-style.md "Pure core").
//
// The rule is checked over the whole import graph (`go list -deps`), not
// only direct imports, and it is exactly this:
//
//  1. Every package of this module that a pure package reaches, directly or
//     through others, is itself pure (on purePackages): no edge package
//     (tpm, agent, internal/journal, ...) hides behind a pure one.
//  2. No module package so reached imports a forbidden package
//     (forbiddenImports): the OS, syscalls, the network, processes, the
//     clock, logging, randomness, file paths.
//  3. The standard library and allowed third-party packages are trusted
//     leaves: fmt reaches os and crypto/x509 reaches net, but they are
//     called on bytes, never for I/O. Packages that only exist to do I/O
//     or to run something are never allowed anywhere in the closure
//     (neverReached), however they are reached.
//  4. Third-party packages reached must be allowed (allowedThirdParty):
//     go-tpm's tpm2 types and what they pull in, the secp256k1 curve,
//     never a TPM transport backend (linuxtpm, tcp, simulator) or
//     x/sys/unix, which are in neverReached.
//
// Every listed pure package must have Go files: a package that moved or
// vanished must be taken off the list, not silently pass.
var purePackages = []string{"ima", "ima/digsig", "pcr", "eventlog", "bootagg", "replay", "policy", "internal/sm3", "runtimepolicy", "verify",
	"attest", "quote", "enroll", "appraise"}

const module = "github.com/imago-ima/imago"

var forbiddenImports = map[string]bool{
	"os": true, "os/exec": true, "os/signal": true, "os/user": true, "net": true, "net/http": true,
	"syscall": true, "golang.org/x/sys/unix": true, "time": true, "log": true,
	"log/slog": true, "log/syslog": true, "math/rand": true, "math/rand/v2": true, "crypto/rand": true,
	"io/ioutil": true, "io/fs": true, "path/filepath": true, "runtime/cgo": true, "unsafe": true, "plugin": true,
}

// neverReached may not be in a pure package's closure by any path.
var neverReached = []string{
	"os/exec", "os/signal", "os/user", "net/http", "log", "log/slog", "log/syslog", "plugin", "database/sql",
	"golang.org/x/sys/unix",
	"github.com/google/go-tpm/tpm2/transport/", // backends: linuxtpm, tcp, simulator, ...
	"github.com/google/go-tpm-tools/",
}

// allowedThirdParty are the non-standard packages a pure package may reach
// (prefixes; neverReached wins).
var allowedThirdParty = []string{
	"github.com/google/go-tpm/tpm2", // the TPM 2.0 structures and command types
	"github.com/google/go-tpm/tpmutil",
	"github.com/google/go-tpm/legacy/tpm2", // pulled in by tpm2 for shared constants
	// secp256k1 keys (Keylime's ECDSA test keys, DSSE policy keys): a
	// maintained curve library, pure arithmetic on bytes.
	"github.com/decred/dcrd/dcrec/secp256k1/v4",
}

// trustedLeaves are allowed third-party packages whose own imports are not
// followed, as the standard library's are not: go-tpm's tpmutil holds the
// marshalling helpers tpm2 calls on bytes, beside device helpers (x/sys/unix)
// that pure code never calls. The pure packages that decode TPM structures
// (attest, quote, enroll, appraise: go-tpm's tpm2 types, as go-style.md
// allows) reach it through tpm2 -> legacy/tpm2.
var trustedLeaves = []string{"github.com/google/go-tpm/tpmutil"}

// pkgInfo is what `go list -json` says about one package.
type pkgInfo struct {
	ImportPath string
	Imports    []string
	Standard   bool
	GoFiles    []string
	CgoFiles   []string
	Error      *struct{ Err string }
}

func TestPureCoreImports(t *testing.T) {
	var roots []string
	for _, p := range purePackages {
		roots = append(roots, module+"/"+p)
	}
	// The roots themselves, with -e so that a package without files is
	// reported here rather than failing go list.
	byPath, err := goList(append([]string{"-e"}, roots...))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range roots {
		p := byPath[r]
		if p == nil || len(p.GoFiles)+len(p.CgoFiles) == 0 {
			t.Errorf("pure package %s has no Go files: take it off purePackages or restore it", strings.TrimPrefix(r, module+"/"))
		}
	}
	if t.Failed() {
		return
	}
	graph, err := goList(append([]string{"-deps"}, roots...))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range checkPure(graph, roots) {
		t.Error(v)
	}
}

// goList runs `go list -json args...` and indexes the packages by path.
func goList(args []string) (map[string]*pkgInfo, error) {
	cmd := exec.Command("go", append([]string{"list", "-json"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %v: %v\n%s", args, err, stderr.Bytes())
	}
	m := map[string]*pkgInfo{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkgInfo
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		m[p.ImportPath] = &p
	}
	return m, nil
}

// checkPure applies the rule to the import graph and returns every
// violation, each naming the path from the pure root that reaches it.
func checkPure(graph map[string]*pkgInfo, roots []string) []string {
	pure := map[string]bool{}
	for _, r := range roots {
		pure[r] = true
	}
	var out []string
	for _, root := range roots {
		// Breadth-first, remembering how each package was reached.
		from := map[string]string{root: ""}
		queue := []string{root}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			info := graph[p]
			if info == nil {
				out = append(out, fmt.Sprintf("%s: not in go list output", chain(from, p)))
				continue
			}
			inModule := p == module || strings.HasPrefix(p, module+"/")
			switch {
			case never(p):
				out = append(out, fmt.Sprintf("%s: %s may not be reached from the pure core", chain(from, p), p))
				continue
			case inModule && !pure[p]:
				out = append(out, fmt.Sprintf("%s: %s is not a pure package", chain(from, p), p))
				continue
			case !inModule && !info.Standard && !allowedThird(p):
				out = append(out, fmt.Sprintf("%s: third-party %s is not allowed in the pure core", chain(from, p), p))
				continue
			}
			if inModule {
				for _, imp := range info.Imports {
					if forbiddenImports[imp] {
						out = append(out, fmt.Sprintf("%s: pure package %s imports %s", chain(from, p), p, imp))
					}
				}
			}
			if slices.Contains(trustedLeaves, p) {
				continue
			}
			for _, imp := range info.Imports {
				if _, seen := from[imp]; !seen && imp != "C" {
					from[imp] = p
					queue = append(queue, imp)
				}
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func never(p string) bool {
	for _, n := range neverReached {
		if p == n || strings.HasSuffix(n, "/") && strings.HasPrefix(p, n) {
			return true
		}
	}
	return false
}

func allowedThird(p string) bool {
	for _, a := range allowedThirdParty {
		if p == a || strings.HasPrefix(p, a+"/") {
			return true
		}
	}
	return false
}

// chain prints how p was reached: root -> a -> p.
func chain(from map[string]string, p string) string {
	var parts []string
	for q := p; q != ""; q = from[q] {
		parts = append(parts, strings.TrimPrefix(q, module+"/"))
	}
	slices.Reverse(parts)
	return strings.Join(parts, " -> ")
}

// TestCheckPure shows that the rule catches each kind of violation on a
// made-up graph.
func TestCheckPure(t *testing.T) {
	m := func(p string) string { return module + "/" + p }
	graph := map[string]*pkgInfo{
		m("ima"):              {ImportPath: m("ima"), Imports: []string{"fmt", m("pcr")}},
		m("pcr"):              {ImportPath: m("pcr"), Imports: []string{"crypto/x509"}},
		"fmt":                 {ImportPath: "fmt", Standard: true, Imports: []string{"os"}},
		"os":                  {ImportPath: "os", Standard: true},
		"crypto/x509":         {ImportPath: "crypto/x509", Standard: true, Imports: []string{"net"}},
		"net":                 {ImportPath: "net", Standard: true},
		m("bad/direct"):       {ImportPath: m("bad/direct"), Imports: []string{"time"}},
		"time":                {ImportPath: "time", Standard: true},
		m("bad/indirect"):     {ImportPath: m("bad/indirect"), Imports: []string{m("internal/journal")}},
		m("internal/journal"): {ImportPath: m("internal/journal"), Imports: []string{"os"}},
		m("bad/never"):        {ImportPath: m("bad/never"), Imports: []string{"strings"}},
		"strings":             {ImportPath: "strings", Standard: true, Imports: []string{"os/exec"}},
		"os/exec":             {ImportPath: "os/exec", Standard: true},
		m("bad/backend"):      {ImportPath: m("bad/backend"), Imports: []string{"github.com/google/go-tpm/tpm2"}},
		"github.com/google/go-tpm/tpm2": {ImportPath: "github.com/google/go-tpm/tpm2",
			Imports: []string{"github.com/google/go-tpm/tpm2/transport/linuxtpm"}},
		"github.com/google/go-tpm/tpm2/transport/linuxtpm": {ImportPath: "github.com/google/go-tpm/tpm2/transport/linuxtpm"},
		m("bad/thirdparty"):  {ImportPath: m("bad/thirdparty"), Imports: []string{"example.com/logger"}},
		"example.com/logger": {ImportPath: "example.com/logger"},
	}
	if v := checkPure(graph, []string{m("ima"), m("pcr")}); len(v) != 0 {
		t.Errorf("clean graph: %v", v)
	}
	for _, tc := range []struct{ root, want string }{
		{"bad/direct", "bad/direct: pure package " + m("bad/direct") + " imports time"},
		{"bad/indirect", "bad/indirect -> internal/journal: " + m("internal/journal") + " is not a pure package"},
		{"bad/never", "bad/never -> strings -> os/exec: os/exec may not be reached from the pure core"},
		{"bad/backend", "bad/backend -> github.com/google/go-tpm/tpm2 -> github.com/google/go-tpm/tpm2/transport/linuxtpm: "},
		{"bad/thirdparty", "third-party example.com/logger is not allowed"},
	} {
		v := checkPure(graph, []string{m(tc.root)})
		if len(v) != 1 || !strings.Contains(v[0], tc.want) {
			t.Errorf("%s: %q, want one violation containing %q", tc.root, v, tc.want)
		}
	}
}
