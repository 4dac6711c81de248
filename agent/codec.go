package agent

import (
	"encoding/binary"

	"github.com/imago-ima/imago/ima"
)

// byteOrder is the producer's byte order (ima-spec.md §2.2): the agent writes
// binary.NativeEndian, as the kernel does without ima_canonical_fmt.
type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// appendBinary appends e's binary record (ima-spec.md §2.3) with digest in the
// template digest column.
func appendBinary(dst []byte, e *ima.Entry, digest []byte, order byteOrder) ([]byte, error) {
	c := *e
	c.Digest = digest
	return ima.AppendBinary(dst, &c, order)
}

// appendASCII appends e's ascii_runtime_measurements line (ima-spec.md §2.4)
// with digest in the template digest column.
func appendASCII(dst []byte, e *ima.Entry, digest []byte) []byte {
	c := *e
	c.Digest = digest
	return ima.AppendASCII(dst, &c)
}
