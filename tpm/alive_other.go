//go:build !unix

package tpm

import "net"

// alive cannot peek here: a held connection counts as open, and a command
// on a dead one fails and redials next time.
func alive(c net.Conn) bool { return true }
