// fanresp: the least a fanotify gate can do, for reference in
// bench/gate.sh: mark a filesystem for FAN_OPEN_EXEC_PERM and answer
// FAN_ALLOW to every event from one blocking read loop. What imago's gate
// adds over this is its own cost; this is the kernel's round trip.
// Usage: fanresp PATH (runs until killed).
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/fanotify.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc != 2) return 2;
	int fd = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_UNLIMITED_QUEUE, O_RDONLY | O_LARGEFILE);
	if (fd < 0 || fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_OPEN_EXEC_PERM, AT_FDCWD, argv[1]) < 0) {
		perror("fanresp");
		return 1;
	}
	char buf[8192];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n <= 0) return 1;
		for (struct fanotify_event_metadata *m = (void *)buf; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
			struct fanotify_response r = {.fd = m->fd, .response = FAN_ALLOW};
			if (write(fd, &r, sizeof r) != sizeof r) return 1;
			close(m->fd);
		}
	}
}
