package attester

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/ima"
)

// List is a measurement list the attester reads from an entry index on.
type List interface {
	// ReadFrom returns the binary records from entry index on, complete
	// records only, at most attest.MaxListSize bytes.
	ReadFrom(index uint64) ([]byte, error)
	// PCRs returns the PCRs the list's entries extend (as far as read).
	PCRs() ([]int, error)
}

// ErrShortList: the list has fewer entries than the verifier asks for
// (after a reboot the list starts again). The attester then sends no
// entries: the quote shows the verifier whether the TPM was reset.
var ErrShortList = errors.New("attester: the list is shorter than the verifier's offset")

// KernelList is the kernel's binary list in securityfs.
const KernelList = "/sys/kernel/security/ima/binary_runtime_measurements"

// KernelEventLog is the firmware event log in securityfs.
const KernelEventLog = "/sys/kernel/security/tpm0/binary_bios_measurements"

// ListFile is a binary measurement list file: the kernel's securityfs
// file, or an imago agent's export. It remembers where the last read
// ended, so a round reads only the new records (the list is append-only;
// a shorter file, after a reboot, is read from the start).
type ListFile struct {
	Path string

	mu     sync.Mutex
	cursor struct {
		index  uint64
		offset int64
	}
	pcrs []int
}

// OpenList returns the list at path: a list file, or a directory holding
// binary_runtime_measurements (an imago agent's --runtime-dir).
func OpenList(path string) (*ListFile, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("attester: list: %w", err)
	}
	if fi.IsDir() {
		path = filepath.Join(path, "binary_runtime_measurements")
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("attester: list: %w", err)
		}
	}
	return &ListFile{Path: path}, nil
}

// ReadFrom implements List.
func (l *ListFile) ReadFrom(index uint64) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cursor.index <= index && l.cursor.offset > 0 {
		b, n, err := l.read(index, l.cursor.index, l.cursor.offset)
		if err != nil || n > index {
			return b, err
		}
		// Fewer entries than the cursor: the list shrank (a reboot).
	}
	b, n, err := l.read(index, 0, 0)
	if err == nil && n < index {
		err = fmt.Errorf("%w: %s has %d entries, asked from entry %d", ErrShortList, l.Path, n, index)
	}
	return b, err
}

// readSlack is how far past MaxListSize one read goes to find where the
// asked entries start.
const readSlack = 64 << 20

// read reads the list from byte offset start (entry at) and returns the
// complete records from entry index on, and the number of entries seen in
// total (index+1 or more if entry index exists; 0 if start was past the
// end).
func (l *ListFile) read(index, at uint64, start int64) ([]byte, uint64, error) {
	f, err := os.Open(l.Path)
	if err != nil {
		return nil, 0, fmt.Errorf("attester: list: %w", err)
	}
	defer f.Close()
	if start > 0 {
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			return nil, 0, nil
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, attest.MaxListSize+readSlack))
	if err != nil {
		return nil, 0, fmt.Errorf("attester: list: %w", err)
	}
	if start > 0 && len(data) == 0 && at < index {
		return nil, 0, nil
	}
	r := ima.NewReader(bytes.NewReader(data), ima.ReaderOptions{AllowUnknownTemplates: true})
	var from, last int64 = -1, 0
	for {
		if at == index && from < 0 {
			from = r.Offset()
			last = from
			l.cursor.index, l.cursor.offset = at, start+from
		}
		e, err := r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break // a record being appended waits for the next round
			}
			return nil, 0, fmt.Errorf("attester: list %s: %w", l.Path, err)
		}
		if !slices.Contains(l.pcrs, int(e.PCR)) {
			l.pcrs = append(l.pcrs, int(e.PCR))
		}
		at++
		if from >= 0 {
			if r.Offset()-from > attest.MaxListSize {
				break
			}
			last = r.Offset()
		}
	}
	if from < 0 {
		return nil, at, nil
	}
	if at == index {
		at++ // entry index is the (empty) end: nothing new
	}
	return data[from:last], at, nil
}

// PCRs implements List: the PCRs of the entries read so far, or of the
// first entry if none was.
func (l *ListFile) PCRs() ([]int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pcrs) > 0 {
		return slices.Clone(l.pcrs), nil
	}
	f, err := os.Open(l.Path)
	if err != nil {
		return nil, fmt.Errorf("attester: list: %w", err)
	}
	defer f.Close()
	e, err := ima.NewReader(io.LimitReader(f, 1<<20), ima.ReaderOptions{AllowUnknownTemplates: true}).Next()
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("attester: list %s: %w", l.Path, err)
	}
	l.pcrs = []int{int(e.PCR)}
	return slices.Clone(l.pcrs), nil
}
