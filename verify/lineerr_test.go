package verify

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/imago-ima/imago/ima"
)

// A line the parser refuses is reported at its own entry and line, deep
// in a list the workers parse (many batches) and among the lines the
// reader parses itself (buffer templates): not at the count of lines one
// parser happened to see.
func TestRefusedLinePosition(t *testing.T) {
	const n, bad = 5000, 3210
	var lines [][]byte
	for i := range n {
		sum := sha256.Sum256([]byte(fmt.Sprint(i)))
		e, err := ima.NewEntry(ima.TemplateIMANG, nil, 10, ima.DigestNG(ima.HashSHA256, sum[:]), ima.NameNG(fmt.Sprintf("/usr/bin/f%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, bytes.TrimSuffix(ima.AppendASCII(nil, e), []byte("\n")))
	}
	for _, tc := range []struct{ name, template string }{{"worker", "ima-ng"}, {"reader", "ima-buf"}} {
		t.Run(tc.name, func(t *testing.T) {
			l := bytes.Clone(lines[bad])
			l[10] = ' ' // a space inside the template digest
			l = bytes.Replace(l, []byte(" ima-ng "), []byte(" "+tc.template+" "), 1)
			list := bytes.Join(append(append(append([][]byte{}, lines[:bad]...), l), lines[bad+1:]...), []byte("\n"))
			p, err := NewPolicy(Options{})
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = p.Verify(nil, Round{List: bytes.NewReader(list)})
			var fe *ima.FormatError
			if !errors.As(err, &fe) || fe.Entry != bad || fe.Offset != bad+1 ||
				!strings.Contains(err.Error(), fmt.Sprintf("entry %d at line %d: template digest", bad, bad+1)) {
				t.Fatalf("got %v, want entry %d at line %d", err, bad, bad+1)
			}
		})
	}
}
