package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// stream builds `go test -json` events for one package.
func stream(t *testing.T, events ...event) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	for _, e := range events {
		if e.Package == "" {
			e.Package = "github.com/imago-ima/imago/x"
		}
		line, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	return &b
}

func skipped(test string, msg string) []event {
	return []event{
		{Action: "run", Test: test},
		{Action: "output", Test: test, Output: "=== RUN   " + test + "\n"},
		{Action: "output", Test: test, Output: "    x_test.go:12: " + msg + "\n"},
		{Action: "output", Test: test, Output: "--- SKIP: " + test + " (0.00s)\n"},
		{Action: "skip", Test: test},
	}
}

func TestReport(t *testing.T) {
	var evs []event
	evs = append(evs, skipped("TestEnv", "testenv: env[kernel]: no fsuuid ioctl")...)
	evs = append(evs, skipped("TestMissing", "testenv: missing[swtpm]: swtpm not installed")...)
	evs = append(evs, skipped("TestBare", "fixture absent")...)
	evs = append(evs, skipped("TestUnlisted", "testenv: env[moon-phase]: not on the list")...)
	evs = append(evs,
		event{Action: "output", Output: "PASS\n"},
		event{Action: "output", Output: "ok  \tgithub.com/imago-ima/imago/x\t0.1s\n"},
		event{Action: "pass"},
	)
	for _, tc := range []struct {
		ci   bool
		want int
	}{{false, 0}, {true, 1}} {
		var out bytes.Buffer
		if got := run(stream(t, evs...), &out, tc.ci); got != tc.want {
			t.Errorf("CI=%v: exit %d, want %d\n%s", tc.ci, got, tc.want, out.String())
		}
		s := out.String()
		for _, want := range []string{
			"ok  \tgithub.com/imago-ima/imago/x",
			"skipped tests (4):",
			"x TestBare\n      fixture absent\n      (a skip outside internal/testenv: fails under CI)",
			"x TestEnv\n      testenv: env[kernel]: no fsuuid ioctl\n      (env[kernel]: ",
			"x TestMissing\n      testenv: missing[swtpm]: swtpm not installed\n      (missing here, installed by CI)",
			"x TestUnlisted\n      testenv: env[moon-phase]: not on the list\n      (a skip outside internal/testenv: fails under CI)",
			"skips: 1 environment, 1 missing requirement, 2 outside testenv",
		} {
			if !strings.Contains(s, want) {
				t.Errorf("CI=%v: output lacks %q:\n%s", tc.ci, want, s)
			}
		}
		if strings.Contains(s, "PASS\n") {
			t.Errorf("package PASS line copied:\n%s", s)
		}
	}
}

// Only environment skips: CI passes.
func TestReportEnvOnly(t *testing.T) {
	evs := skipped("TestEnv", "testenv: env[short]: long test")
	evs = append(evs, event{Action: "pass"})
	var out bytes.Buffer
	if got := run(stream(t, evs...), &out, true); got != 0 {
		t.Errorf("exit %d:\n%s", got, out.String())
	}
}

// A failed test prints its output and fails, CI or not.
func TestReportFailure(t *testing.T) {
	evs := []event{
		{Action: "run", Test: "TestX"},
		{Action: "output", Test: "TestX", Output: "    x_test.go:3: boom\n"},
		{Action: "output", Test: "TestX", Output: "--- FAIL: TestX (0.00s)\n"},
		{Action: "fail", Test: "TestX"},
		{Action: "output", Output: "FAIL\tgithub.com/imago-ima/imago/x\t0.1s\n"},
		{Action: "fail"},
	}
	var out bytes.Buffer
	if got := run(stream(t, evs...), &out, false); got != 1 {
		t.Errorf("exit %d", got)
	}
	if !strings.Contains(out.String(), "x_test.go:3: boom") || !strings.Contains(out.String(), "skipped tests: none") {
		t.Errorf("output:\n%s", out.String())
	}
}

// A build failure (no test events at all) fails.
func TestReportBuildFailure(t *testing.T) {
	evs := []event{
		{Action: "build-output", Output: "x.go:1:1: syntax error\n"},
		{Action: "build-fail"},
	}
	var out bytes.Buffer
	if got := run(stream(t, evs...), &out, false); got != 1 || !strings.Contains(out.String(), "syntax error") {
		t.Errorf("exit %d:\n%s", got, out.String())
	}
}
