// Package hexdec decodes hexadecimal text eight digits at a time, for the
// hot paths that read millions of digests: the lines of an ascii
// measurement list (package ima) and the digests of a runtime policy
// (package runtimepolicy). It validates while it decodes and agrees with
// encoding/hex on every input (FuzzDecode checks it).
package hexdec
