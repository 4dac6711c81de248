// Package ima owns the Linux IMA measurement list, byte for byte: the kernel
// hash algorithm ids (ima-spec.md §1.1), the template descriptors and custom
// formats (§3.1, §3.2), the encoding of every template field (§3.3), the
// binary record layout and its byte-order and digest-width variants (§2.2,
// §2.3), the ASCII line format (§2.4), and the template digest (§4.1).
//
// Reading: NewReader reads binary_runtime_measurements[_<algo>] (detecting
// byte order and digest width unless told), NewASCIIReader reads
// ascii_runtime_measurements[_<algo>] and rebuilds each entry's template
// data, and NewListReader picks one by sniffing. All have the shape
// Next() (*Entry, error) / All() / Offset(), with a sticky error, io.EOF at a
// clean end, io.ErrUnexpectedEOF (wrapped) for a cut record, and
// *FormatError naming the byte offset or line of anything malformed. Every
// length read from input is bounded by a named constant (MaxTemplateNameLen,
// MaxTemplateDataLen, MaxEventNameLen, MaxASCIILineLen) before memory is
// committed to it.
//
// Writing: AppendBinary, AppendASCII and Writer reproduce the kernel's bytes,
// so reading and writing a list gives it back unchanged. NewEntry and the
// field constructors (DigestNG, NameNG, Sig, Buf, UID, ...) build entries the
// way the kernel does, e.g. for a userspace measurement agent.
//
// Decoding: Entry.FileDigest, Entry.Name, Entry.Signature, Entry.Uint,
// Entry.Xattrs and ParseDigestField/ParseSigHeader give the fields' values;
// Entry.MarshalJSON gives them as JSON.
//
// The package is pure: it does no I/O of its own beyond the io.Reader and
// io.Writer it is given, and imports only the standard library, pcr and
// internal/sm3.
package ima
