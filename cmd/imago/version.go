package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/tpm"
)

// buildInfo is what imago knows about its own build.
type buildInfo struct {
	Version   string `json:"version"`            // module version, "(devel)" for a local build
	Revision  string `json:"revision,omitempty"` // VCS revision the binary was built from
	Time      string `json:"time,omitempty"`     // commit time of that revision (RFC 3339)
	Modified  bool   `json:"modified"`           // the working tree had changes
	Go        string `json:"go"`                 // toolchain
	Platform  string `json:"platform"`           // GOOS/GOARCH
	CGO       bool   `json:"cgo"`                // built with cgo
	Simulator bool   `json:"simulator"`          // --tpm sim is built in
}

// readBuildInfo reads the build information the Go toolchain embedded
// (runtime/debug.ReadBuildInfo). The VCS fields are there when the binary
// was built inside a git checkout (go build's -buildvcs, on by default).
func readBuildInfo() buildInfo {
	bi := buildInfo{
		Version:   "(unknown)",
		Go:        runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
		Simulator: tpm.Available("sim"),
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return bi
	}
	bi.Version = info.Main.Version
	if bi.Version == "" {
		bi.Version = "(devel)"
	}
	bi.Go = info.GoVersion
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			bi.Revision = s.Value
		case "vcs.time":
			bi.Time = s.Value
		case "vcs.modified":
			bi.Modified = s.Value == "true"
		case "CGO_ENABLED":
			bi.CGO = s.Value == "1"
		}
	}
	return bi
}

// versionLine is what --version prints.
func versionLine(bi buildInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "imago %s", bi.Version)
	if bi.Revision != "" {
		fmt.Fprintf(&b, " (%s", shortRev(bi.Revision))
		if bi.Modified {
			b.WriteString(", modified")
		}
		if bi.Time != "" {
			fmt.Fprintf(&b, ", %s", bi.Time)
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, ", %s %s, simulator %s", bi.Go, bi.Platform, yesNo(bi.Simulator, "built in", "not built in"))
	return b.String()
}

func shortRev(r string) string {
	if len(r) > 12 {
		return r[:12]
	}
	return r
}

func yesNo(v bool, yes, no string) string {
	if v {
		return yes
	}
	return no
}

func newVersionCommand(c *cli) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print imago's version, source revision, Go version and build options",
		Long: `Print the module version, the VCS revision and commit time the binary was built
from (and whether the working tree had changes), the Go toolchain and platform,
and whether the embedded TPM simulator (--tpm sim) is built in: it needs cgo.
'imago --version' prints the same on one line.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			bi := readBuildInfo()
			if asJSON {
				return writeJSON(c.stdout, bi)
			}
			w := c.stdout
			fmt.Fprintf(w, "imago %s\n", bi.Version)
			if bi.Revision != "" {
				fmt.Fprintf(w, "revision:  %s%s\n", bi.Revision, map[bool]string{true: " (modified)"}[bi.Modified])
			} else {
				fmt.Fprintln(w, "revision:  unknown (not built in a git clone: a tarball, a git worktree, or -buildvcs=false)")
			}
			if bi.Time != "" {
				fmt.Fprintf(w, "time:      %s\n", bi.Time)
			}
			fmt.Fprintf(w, "go:        %s %s\n", bi.Go, bi.Platform)
			fmt.Fprintf(w, "cgo:       %s\n", yesNo(bi.CGO, "yes", "no"))
			fmt.Fprintf(w, "simulator: %s\n", yesNo(bi.Simulator, "built in (--tpm sim)", "not built in (a CGO_ENABLED=0 build)"))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the build information as JSON")
	exitStatus(cmd, "0 printed", "2 bad usage")
	return cmd
}
