// Command testreport reads `go test -json` on standard input, prints what
// `go test` would (package results, and the output of every failed test),
// then lists every skipped test with its reason. It exits non-zero when a
// test or a build failed, and, under CI=true, when a test skipped for a
// reason that is not on testenv's short list of environment skips (a bare
// t.Skip, or a testenv.Missing requirement, which CI promised to install).
//
//	go test -race -json ./... | go run ./internal/testenv/testreport
//
// This is how `make test` keeps skips visible: a test that cannot run here
// is either on the list (testenv.EnvReasons, each with its reason) or it
// fails CI.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/imago-ima/imago/internal/testenv"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

type key struct{ pkg, test string }

// skip is one skipped test and the reason it gave.
type skip struct {
	key
	reason string
	kind   string // "env", "missing" or "bare"
	env    testenv.EnvReason
}

// envRe matches the message of testenv.Env: "testenv: env[<reason>]: ...".
var envRe = regexp.MustCompile(`^` + regexp.QuoteMeta(testenv.Prefix) + `env\[([a-z0-9-]+)\]: `)

func main() { os.Exit(run(os.Stdin, os.Stdout, testenv.CI())) }

// run reports r on w and returns the exit status.
func run(r io.Reader, w io.Writer, ci bool) int {
	skips, failed, err := report(r, w)
	if err != nil {
		fmt.Fprintf(w, "testreport: %v\n", err)
		return 2
	}
	bad := summarize(w, skips, ci)
	switch {
	case failed:
		fmt.Fprintln(w, "FAIL: tests failed")
		return 1
	case bad > 0 && ci:
		fmt.Fprintf(w, "FAIL: %d skip(s) that CI does not accept (not an environment reason of internal/testenv)\n", bad)
		return 1
	}
	return 0
}

// report copies the package-level output of r to w, with the output of each
// failed test, and returns the skipped tests and whether anything failed.
func report(r io.Reader, w io.Writer) ([]skip, bool, error) {
	out := map[key][]string{}
	var skips []skip
	failed := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not test2json (a build error printed by go itself).
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "output", "build-output":
			if e.Test == "" {
				if e.Output != "PASS\n" {
					fmt.Fprint(w, e.Output)
				}
			} else {
				out[k] = append(out[k], e.Output)
			}
		case "fail", "build-fail":
			failed = true
			if e.Test != "" {
				fmt.Fprint(w, strings.Join(out[k], ""))
			}
			delete(out, k)
		case "skip":
			if e.Test != "" {
				skips = append(skips, classify(k, out[k]))
			}
			delete(out, k)
		case "pass":
			delete(out, k)
		}
	}
	return skips, failed, sc.Err()
}

// classify finds the reason a skipped test printed and what kind it is.
func classify(k key, lines []string) skip {
	s := skip{key: k, kind: "bare"}
	var msgs []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		// "file_test.go:12: message": drop the position.
		if i := strings.Index(t, ": "); i > 0 && strings.Contains(t[:i], ".go:") {
			t = t[i+2:]
		}
		msgs = append(msgs, t)
	}
	s.reason = strings.Join(msgs, " | ")
	for _, m := range msgs {
		if sm := envRe.FindStringSubmatch(m); sm != nil {
			s.env = testenv.EnvReason(sm[1])
			if _, ok := testenv.EnvReasons[s.env]; ok {
				s.kind, s.reason = "env", m
			}
			return s
		}
		if strings.HasPrefix(m, testenv.Prefix+"missing[") {
			s.kind, s.reason = "missing", m
			return s
		}
	}
	if s.reason == "" {
		s.reason = "(no reason given)"
	}
	return s
}

// summarize lists the skips and returns how many CI does not accept.
func summarize(w io.Writer, skips []skip, ci bool) int {
	if len(skips) == 0 {
		fmt.Fprintln(w, "skipped tests: none")
		return 0
	}
	sort.Slice(skips, func(i, j int) bool {
		if skips[i].pkg != skips[j].pkg {
			return skips[i].pkg < skips[j].pkg
		}
		return skips[i].test < skips[j].test
	})
	count := map[string]int{}
	bad := 0
	fmt.Fprintf(w, "skipped tests (%d):\n", len(skips))
	for _, s := range skips {
		count[s.kind]++
		mark := ""
		switch s.kind {
		case "env":
			mark = "env[" + string(s.env) + "]: " + testenv.EnvReasons[s.env]
		case "missing":
			mark = "missing here, installed by CI"
			bad++
		default:
			mark = "a skip outside internal/testenv: fails under CI"
			bad++
		}
		fmt.Fprintf(w, "  %s %s\n      %s\n      (%s)\n", shortPkg(s.pkg), s.test, s.reason, mark)
	}
	fmt.Fprintf(w, "skips: %d environment, %d missing requirement, %d outside testenv", count["env"], count["missing"], count["bare"])
	if ci {
		fmt.Fprintf(w, " (CI=true: only environment skips are accepted)")
	}
	fmt.Fprintln(w)
	return bad
}

func shortPkg(p string) string {
	const mod = "github.com/imago-ima/imago"
	if p == mod {
		return "."
	}
	return strings.TrimPrefix(p, mod+"/")
}
