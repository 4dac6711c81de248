package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/ctxio"
	"github.com/imago-ima/imago/pcr"
)

// input is an opened FILE argument: a file, or standard input for "-".
// Its reads end with the context's error once the context is canceled
// (SIGINT, SIGTERM), so that no input keeps a command running past a
// signal (internal/ctxio).
type input struct {
	name string
	r    io.Reader
	f    *ctxio.File // nil for stdin
	// seekable: a regular file, which a second pass can read again.
	seekable bool
}

// open opens FILE ('-' for stdin) for reading: a regular file, a FIFO or
// pipe (bash's <(...)), a character device such as a securityfs file.
// Opening a FIFO waits for a writer, as cat does, but only until ctx ends.
func (c *cli) open(ctx context.Context, name string) (*input, error) {
	if name == "-" {
		return &input{name: "<stdin>", r: bufio.NewReaderSize(ctxio.NewReader(ctx, c.stdin), 1<<16)}, nil
	}
	f, err := ctxio.Open(ctx, name)
	if err != nil {
		return nil, inputErr(err)
	}
	if st, err := f.Stat(); err == nil && st.IsDir() {
		f.Close()
		return nil, inputErr(fmt.Errorf("%s: is a directory", name))
	}
	st, err := f.Stat()
	return &input{name: name, r: f, f: f, seekable: err == nil && st.Mode().IsRegular()}, nil
}

// isASCII reports whether the input starts like an ascii list; the bytes
// looked at are read again by the next reader.
func (in *input) isASCII() bool {
	br, ok := in.r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(in.r, 64<<10)
		in.r = br
	}
	p, _ := br.Peek(4096)
	return ima.LooksASCII(p)
}

// reopen rewinds a file input for a second pass; stdin cannot be rewound.
func (in *input) reopen() (io.Reader, bool) {
	if !in.seekable {
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
