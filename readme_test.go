package imago_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/imago-ima/imago/internal/testenv"
)

// TestREADMEExamples runs the README's worked examples: every ```sh block
// that starts with `cd testdata/...` (a folder of the repository). Each
// `imago ...` command in it (a line ending in '\' goes on in the next)
// runs in that folder with the imago just built, and its output (stdout
// then stderr) must be the `# ` lines that follow it, in order; a '…' in
// such a line stands for any text (an abbreviated digest). Paths under
// /tmp/ are put in a folder of the test's own. So the README shows what
// imago prints on files a plain clone has.
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
	tmp := t.TempDir()
	for _, b := range blocks {
		for _, c := range b.cmds {
			t.Run(b.dir+": "+strings.Join(c.args, " "), func(t *testing.T) {
				args := slices.Clone(c.args[1:])
				for i, a := range args {
					if rest, ok := strings.CutPrefix(a, "/tmp/"); ok {
						args[i] = filepath.Join(tmp, rest)
					}
				}
				cmd := exec.Command(cli, args...)
				cmd.Dir = b.dir
				var stdout, stderr strings.Builder
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Errorf("exit: %v\n%s%s", err, stdout.String(), stderr.String())
				}
				got := strings.TrimRight(stdout.String()+stderr.String(), "\n")
				var re strings.Builder
				for i, w := range c.want {
					if i > 0 {
						re.WriteString("\n")
					}
					parts := strings.Split(w, "…")
					for j, p := range parts {
						if j > 0 {
							re.WriteString(".*")
						}
						re.WriteString(regexp.QuoteMeta(p))
					}
				}
				if !regexp.MustCompile("^" + re.String() + "$").MatchString(got) {
					t.Errorf("output:\n%s\nREADME says:\n%s", got, strings.Join(c.want, "\n"))
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
		// Join continued lines.
		var joined []string
		for i := 1; i < len(lines); i++ {
			l := lines[i]
			for strings.HasSuffix(l, "\\") && i+1 < len(lines) {
				i++
				l = strings.TrimSuffix(l, "\\") + " " + strings.TrimSpace(lines[i])
			}
			joined = append(joined, l)
		}
		for _, l := range joined {
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
