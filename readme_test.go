package imago_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-ima/imago/internal/testenv"
)

// TestREADMEExamples runs the README's worked examples: every ```sh block
// that starts with `cd testdata/...` (a folder of the repository). Each
// `imago ...` line in it runs in that folder with the imago just built,
// and its output (stdout then stderr) must be the `# ` lines that follow
// it, in order. So the README shows what imago prints on files a plain
// clone has.
func TestREADMEExamples(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeExamples(string(readme))
	if len(blocks) == 0 {
		t.Fatal("README.md has no ```sh block starting with cd testdata/")
	}
	testenv.SkipShort(t)
	cli := buildCLI(t)
	for _, b := range blocks {
		for _, c := range b.cmds {
			t.Run(b.dir+": "+strings.Join(c.args, " "), func(t *testing.T) {
				cmd := exec.Command(cli, c.args[1:]...)
				cmd.Dir = b.dir
				var stdout, stderr strings.Builder
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Errorf("exit: %v\n%s%s", err, stdout.String(), stderr.String())
				}
				got := strings.TrimRight(stdout.String()+stderr.String(), "\n")
				if want := strings.Join(c.want, "\n"); got != want {
					t.Errorf("output:\n%s\nREADME says:\n%s", got, want)
				}
			})
		}
	}
}

type readmeBlock struct {
	dir  string
	cmds []readmeCmd
}

type readmeCmd struct {
	args []string
	want []string
}

// readmeExamples finds the example blocks of a README.
func readmeExamples(s string) []readmeBlock {
	var out []readmeBlock
	for _, part := range strings.Split(s, "```sh\n")[1:] {
		body, _, _ := strings.Cut(part, "```")
		lines := strings.Split(strings.TrimRight(body, "\n"), "\n")
		dir, ok := strings.CutPrefix(lines[0], "cd ")
		if !ok || !strings.HasPrefix(dir, "testdata/") {
			continue
		}
		b := readmeBlock{dir: filepath.FromSlash(dir)}
		for _, l := range lines[1:] {
			switch {
			case strings.HasPrefix(l, "imago "):
				b.cmds = append(b.cmds, readmeCmd{args: strings.Fields(l)})
			case strings.HasPrefix(l, "# ") && len(b.cmds) > 0:
				c := &b.cmds[len(b.cmds)-1]
				c.want = append(c.want, strings.TrimPrefix(l, "# "))
			}
		}
		out = append(out, b)
	}
	return out
}
