// Package sdnotify sends service state notifications to systemd (sd_notify(3)):
// one datagram with "KEY=VALUE" lines to the AF_UNIX socket named by
// $NOTIFY_SOCKET (a path, or an abstract name when it starts with '@').
//
// The agent writes it itself (a few lines, no dependency): READY=1 once its
// socket accepts requests, STATUS= with its state (deferred, initialised,
// bypass).
package sdnotify
