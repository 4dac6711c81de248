package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/imago-ima/imago/pcr"
)

// input is an opened FILE argument: a file, or standard input for "-".
type input struct {
	name string
	r    io.Reader
	f    *os.File // nil for stdin
}

func (c *cli) open(name string) (*input, error) {
	if name == "-" {
		return &input{name: "<stdin>", r: bufio.NewReaderSize(c.stdin, 1<<16)}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, inputErr(err)
	}
	if st, err := f.Stat(); err == nil && st.IsDir() {
		f.Close()
		return nil, inputErr(fmt.Errorf("%s: is a directory", name))
	}
	return &input{name: name, r: f, f: f}, nil
}

// reopen rewinds a file input for a second pass; stdin cannot be rewound.
func (in *input) reopen() (io.Reader, bool) {
	if in.f == nil {
		return nil, false
	}
	if _, err := in.f.Seek(0, io.SeekStart); err != nil {
		return nil, false
	}
	return in.f, true
}

func (in *input) Close() error {
	if in.f != nil {
		return in.f.Close()
	}
	return nil
}

// bankFromListName infers the bank of a per-bank list file from its name, as
// securityfs names them: binary_runtime_measurements_sha256 → sha256. It
// returns false for the classic names and for anything else.
func bankFromListName(name string) (pcr.Bank, bool) {
	base := filepath.Base(name)
	i := strings.LastIndex(base, "_")
	if i < 0 || !strings.Contains(base, "runtime_measurements") {
		return 0, false
	}
	b, err := pcr.ParseBank(base[i+1:])
	if err != nil {
		return 0, false
	}
	return b, true
}
