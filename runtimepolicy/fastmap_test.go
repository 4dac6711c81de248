package runtimepolicy

import (
	"bufio"
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// tablesDump lists what the tables of c hold, one sorted line per name.
func tablesDump(c *Compiled) string {
	var lines []string
	for k, t := range c.tables {
		t.each(func(name []byte, d Digests) {
			lines = append(lines, fmt.Sprintf("%v %q %s", mapKind(k), name, strings.Join(d.Hex(), ",")))
		})
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// fastForms is a digest map of n members in every form the fast path
// reads or leaves to the token reader, some names repeated (the last
// wins).
func fastForms(n int) string {
	dig := func(i, size int) string {
		var seed [8]byte
		binary.LittleEndian.PutUint64(seed[:], uint64(i))
		sum := sha512.Sum512(seed[:])
		return hex.EncodeToString(sum[:size])
	}
	forms := []func(i int) string{
		func(i int) string { return fmt.Sprintf(`"/usr/lib/p%d.so": ["%s"]`, i, dig(i, 32)) },
		func(i int) string { return fmt.Sprintf(`"/s%d": ["%s", "%s"]`, i, dig(i, 20), dig(i+1, 64)) },
		func(i int) string { return fmt.Sprintf(`"/p%d": ["sha256:%s"]`, i, dig(i, 32)) },
		func(i int) string { return fmt.Sprintf(`"/e\u00e9\"%d\\": ["%s"]`, i, dig(i, 48)) },
		func(i int) string { return fmt.Sprintf(`"/raw é %d": ["%s"]`, i, dig(i, 32)) },
		func(i int) string {
			return fmt.Sprintf("\n  \"/n%d\" :\r\n\t[ \"%s\" ,\n \"%s\" ]\n ", i, dig(i, 32), dig(i, 20))
		},
		func(i int) string {
			var d []string
			for j := range fastDigests + 1 {
				d = append(d, `"`+dig(i+j, 32)+`"`)
			}
			return fmt.Sprintf(`"/many%d": [%s]`, i, strings.Join(d, ", "))
		},
		func(i int) string { return fmt.Sprintf(`"/empty%d": []`, i) },
		func(i int) string { return fmt.Sprintf(`"/usr/lib/p%d.so": ["%s"]`, i-8, dig(i, 32)) }, // a repeat
		func(i int) string {
			return fmt.Sprintf(`"/long%d%s": ["%s"]`, i, strings.Repeat("x", MaxNameLen-12), dig(i, 32))
		},
		func(i int) string { return fmt.Sprintf(`"%d": ["%s"]`, i%10, dig(i, 32)) },
		func(i int) string { return fmt.Sprintf(`"/d\/%d": ["%s"]`, i, dig(i, 32)) },
		func(i int) string { return fmt.Sprintf(`"/h%d": ["%s\u0030"]`, i, dig(i, 32)[1:]) },
	}
	members := make([]string, n)
	for i := range members {
		members[i] = forms[i%len(forms)](i)
	}
	return strings.Join(members, ", ")
}

// The fast path reads every member as the token reader does, and fails
// (with the token reader's error, offset and line) where it fails,
// wherever the buffer's end cuts the document.
func TestFastPathAgrees(t *testing.T) {
	body := fastForms(3000)
	bad := map[string]string{
		"":               "",
		"upper":          `, "/u": ["` + strings.Repeat("AB", 32) + `"]`,
		"control":        ", \"/c\x01\": []",
		"name too long":  `, "/` + strings.Repeat("y", MaxNameLen) + `": []`,
		"trailing comma": `,`,
		"no bracket":     `, "/x": ["` + strings.Repeat("ab", 32) + `"`,
		"short digest":   `, "/x": ["abab"]`,
		"not a list":     `, "/x": "` + strings.Repeat("ab", 32) + `"`,
		"cut":            `, "/x": ["` + strings.Repeat("ab", 20),
		"lines":          ",\n\n \"/\\u00e9\":\n []\n,\n\"/x\": [\"abab\"]",
	}
	for name, tail := range bad {
		doc := `{"meta": {"version": 1}, "digests": {` + body + tail + "}, \n" + `"keyrings": {` + body + `}}`
		if name == "cut" {
			doc = doc[:strings.Index(doc, tail)+len(tail)]
		}
		t.Run(name, func(t *testing.T) {
			readers := map[string]func() *bufio.Reader{
				"whole": func() *bufio.Reader { return bufio.NewReaderSize(strings.NewReader(doc), lexBuffer) },
				"4096":  func() *bufio.Reader { return bufio.NewReaderSize(strings.NewReader(doc), 4096) },
				"5003, one byte a read": func() *bufio.Reader {
					return bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(doc)), 5003)
				},
				"20000, halves": func() *bufio.Reader {
					return bufio.NewReaderSize(iotest.HalfReader(strings.NewReader(doc)), 20000)
				},
			}
			slow, slowErr := Compile(strings.NewReader(doc), Options{slow: true})
			if (slowErr == nil) != (name == "") {
				t.Fatalf("token reader: %v", slowErr)
			}
			for rn, r := range readers {
				c, err := Compile(r(), Options{})
				if fmt.Sprint(err) != fmt.Sprint(slowErr) {
					t.Fatalf("%s: fast path: %v\ntoken reader: %v", rn, err, slowErr)
				}
				if err == nil && tablesDump(c) != tablesDump(slow) {
					t.Fatalf("%s: the tables differ", rn)
				}
				p, err := Parse(r(), Options{})
				if fmt.Sprint(err) != fmt.Sprint(slowErr) {
					t.Fatalf("%s: Parse: %v\ntoken reader: %v", rn, err, slowErr)
				}
				if err != nil {
					continue
				}
				ps, _ := Parse(r(), Options{slow: true})
				if !bytes.Equal(p.Marshal(), ps.Marshal()) {
					t.Fatalf("%s: Parse reads otherwise than the token reader", rn)
				}
				if n, k, _ := c.Counts(); n != ps.Digests.Len() || n < 2500 || k != n {
					t.Fatalf("%s: %d paths, %d keyrings, %d parsed", rn, n, k, ps.Digests.Len())
				}
			}
		})
	}
}

// stringEnd finds what a byte at a time finds, at every alignment.
func FuzzStringEnd(f *testing.F) {
	f.Add([]byte(`/usr/lib/x86_64-linux-gnu/libc.so.6": [`), 0)
	f.Add([]byte("abcdefg\\hij\x1fklmnop\"q\x80\xff"), 3)
	f.Add([]byte("\x7f\x80\x9f\xa0\xff\x20\x21\x23\x5b\x5d\x5c"), 1)
	f.Fuzz(func(t *testing.T, w []byte, p int) {
		if p < 0 || p > len(w) {
			return
		}
		want := p
		for want < len(w) && w[want] != '"' && w[want] != '\\' && w[want] >= 0x20 {
			want++
		}
		if got := stringEnd(w, p); got != want {
			t.Fatalf("stringEnd(%q, %d) = %d, want %d", w, p, got, want)
		}
	})
}
