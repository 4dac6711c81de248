package tpm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"sync"
	"syscall"
	"time"
)

// Limits of the socket transport.
const (
	// headerSize is a TPM 2.0 response header: tag (2), responseSize (4),
	// responseCode (4) (TPM 2.0 Part 1, §18.2 / Part 3, §5.2).
	headerSize = 10
	// maxResponseSize bounds responseSize before allocation. TPMs report
	// TPM_PT_MAX_RESPONSE_SIZE of a few KiB (4096 for swtpm and the
	// reference implementation).
	maxResponseSize = 1 << 16
	// dialTimeout bounds connecting to a socket TPM.
	dialTimeout = 5 * time.Second
	// commandTimeout bounds one command's round trip on a socket TPM, so a
	// peer that accepts but never answers does not hang the caller.
	commandTimeout = 30 * time.Second
)

// Connection policy of the socket transport: see streamTPM.
const (
	// idleHangup is how long a connection stays open with no command.
	idleHangup = 20 * time.Millisecond
	// maxHold is how long one connection is kept while commands keep
	// coming; after it the connection is dropped after the next response,
	// letting a queued client in.
	maxHold = 200 * time.Millisecond
)

// streamTPM is a transport.TPMCloser for a TPM command channel on a stream
// socket that carries raw TPM commands and responses (swtpm's --server port
// and unixio socket; not the Microsoft simulator's framed protocol).
//
// swtpm serves one connection at a time and queues the others, so holding a
// connection would block every other client (tpm2-tools, a second imago),
// while connecting per command costs about twice the command itself. So a
// connection is held across a burst of commands, dropped after idle without
// a command, and dropped after maxHold even in a steady stream so queued
// clients get their turn. idle = 0 connects per command; maxHold = 0 holds
// without limit. After an I/O error the connection is dropped and the next
// command redials.
type streamTPM struct {
	network, addr string
	idle, maxHold time.Duration

	mu      sync.Mutex // guards the fields below, against the idle timer
	conn    net.Conn
	since   time.Time // when conn was dialled
	lastUse time.Time
	timer   *time.Timer
}

func newStreamTPM(network, addr string) *streamTPM {
	return &streamTPM{network: network, addr: addr, idle: idleHangup, maxHold: maxHold}
}

// dial connects, classifying "nothing there now" as ErrNoTPM. A unix
// socket whose listen backlog is full (swtpm is busy with another client)
// refuses with EAGAIN; that is retried until dialTimeout.
func (s *streamTPM) dial() (net.Conn, error) {
	deadline := time.Now().Add(dialTimeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		c, err := net.DialTimeout(s.network, s.addr, time.Until(deadline))
		if err == nil {
			return c, nil
		}
		if absent(err) {
			return nil, fmt.Errorf("%w: %w", ErrNoTPM, err)
		}
		if !errors.Is(err, syscall.EAGAIN) || time.Now().Add(wait).After(deadline) {
			return nil, err
		}
		time.Sleep(wait)
	}
}

// absent reports whether a dial error means no listener is there now.
func absent(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist) ||
		errors.Is(err, syscall.ENOENT)
}

// Send writes one command and reads one response: the 10-byte header, then
// responseSize-10 more bytes. An error from dialling wraps ErrNoTPM and
// means the command was not delivered; any later error means it may or may
// not have run.
func (s *streamTPM) Send(cmd []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && !alive(s.conn) {
		// The peer hung up while we held the connection (swtpm stopped
		// or restarted). Nothing was sent on it yet: redial.
		s.hangUp()
	}
	if s.conn == nil {
		c, err := s.dial()
		if err != nil {
			return nil, err
		}
		s.conn, s.since = c, time.Now()
	}
	rsp, err := s.roundTrip(s.conn, cmd)
	now := time.Now()
	if err != nil || s.idle <= 0 || (s.maxHold > 0 && now.Sub(s.since) >= s.maxHold) {
		s.hangUp()
		return rsp, err
	}
	s.lastUse = now
	if s.timer == nil {
		s.timer = time.AfterFunc(s.idle, s.expire)
	} else {
		s.timer.Reset(s.idle)
	}
	return rsp, nil
}

// expire runs on the idle timer and hangs up if no command came since.
func (s *streamTPM) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && time.Since(s.lastUse) >= s.idle {
		s.hangUp()
	}
}

// hangUp closes the connection, if any. s.mu is held.
func (s *streamTPM) hangUp() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

func (s *streamTPM) roundTrip(c net.Conn, cmd []byte) ([]byte, error) {
	if err := c.SetDeadline(time.Now().Add(commandTimeout)); err != nil {
		return nil, err
	}
	if _, err := c.Write(cmd); err != nil {
		return nil, fmt.Errorf("%s %s: write command: %w", s.network, s.addr, err)
	}
	var hdr [headerSize]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%s %s: read response header: %w", s.network, s.addr, err)
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < headerSize || size > maxResponseSize {
		return nil, fmt.Errorf("%s %s: response size %d outside [%d, %d]", s.network, s.addr, size, headerSize, maxResponseSize)
	}
	// go-tpm parses the response after we return and may keep slices of
	// it, so each response gets its own buffer.
	rsp := make([]byte, size)
	copy(rsp, hdr[:])
	if _, err := io.ReadFull(c, rsp[headerSize:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%s %s: read response body (%d bytes): %w", s.network, s.addr, size, err)
	}
	return rsp, nil
}

// Close drops a held connection and stops the idle timer.
func (s *streamTPM) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Stop()
	}
	return s.hangUp()
}

// reachable reports whether something accepts connections at the address
// now. It hangs up at once without sending a command.
func reachable(network, addr string) bool {
	c, err := net.DialTimeout(network, addr, time.Second)
	if errors.Is(err, syscall.EAGAIN) {
		return true // a unix listener with a full backlog: busy, but there
	}
	if err != nil {
		return false
	}
	c.Close()
	return true
}
