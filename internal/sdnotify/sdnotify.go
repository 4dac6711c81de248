package sdnotify

import (
	"errors"
	"fmt"
	"net"
)

// ErrNoSocket is returned when there is no notification socket to write to
// (the process was not started by systemd with Type=notify).
var ErrNoSocket = errors.New("sdnotify: NOTIFY_SOCKET not set")

// Ready is the state that tells systemd start-up has finished.
const Ready = "READY=1"

// Notify sends state (for example Ready, or "STATUS=deferred") to socket,
// the value of $NOTIFY_SOCKET. An empty socket gives ErrNoSocket.
func Notify(socket, state string) error {
	if socket == "" {
		return ErrNoSocket
	}
	if socket[0] == '@' {
		socket = "\x00" + socket[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}
