// Package hexdec decodes hexadecimal text eight digits at a time, for the
// hot paths that read millions of digests: the lines of an ascii
// measurement list (package ima) and the digests of a runtime policy
// (package runtimepolicy), whose usual lower-case SHA-256 digests Lower32
// decodes faster still. It validates while it decodes and agrees with
// encoding/hex on every input (FuzzDecode checks it).
package hexdec
