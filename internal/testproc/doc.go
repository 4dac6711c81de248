// Package testproc runs the server processes tests start (a PostgreSQL
// cluster, an emulator): it starts one, waits until it is ready or has
// exited, and stops it with a signal, killing it after a grace period.
// Every process is started with Pdeathsig (on Linux), so a test binary
// that dies does not leave it running.
package testproc
