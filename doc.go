// Package imago is the root of the imago module: Linux IMA measurement lists,
// TCG firmware event logs and a userspace IMA agent, in Go. The library lives
// in its subpackages (ima, pcr, eventlog, bootagg, replay, tpm, agent); the
// command is cmd/imago. See README.md and ARCHITECTURE.md.
package imago
