// Package xattr reads and writes extended attributes, above all
// security.ima (ima-spec.md §1.3, §10): the thin edge under package
// ima/digsig, which decodes and checks the values. On Linux it uses
// getxattr(2), lgetxattr(2), fgetxattr(2) and setxattr(2) through
// golang.org/x/sys/unix; elsewhere every call fails with
// errors.ErrUnsupported.
//
// An absent attribute is ErrNoData (ENODATA); a filesystem without
// extended attributes gives an error wrapping errors.ErrUnsupported
// (ENOTSUP). Values are bounded by MaxSize, the kernel's XATTR_SIZE_MAX.
package xattr

import "errors"

// IMA is the name of the attribute IMA appraisal reads.
const IMA = "security.ima"

// MaxSize is XATTR_SIZE_MAX, the largest value the kernel stores.
const MaxSize = 65536

// ErrNoData reports that the file has no such attribute (ENODATA).
var ErrNoData = errors.New("xattr: no such attribute")
