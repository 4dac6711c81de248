// gatebench: times fork(vfork)+exec+wait of a program, once per iteration,
// for bench/gate.sh. Usage: gatebench N PROG [PROG...] — with several
// programs each iteration runs the next one in turn (first executions).
// Prints: n, p50, p99, mean, min, max in microseconds, one line.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

static int cmp(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: %s N PROG [PROG...]\n", argv[0]);
		return 2;
	}
	long n = atol(argv[1]);
	int nprog = argc - 2;
	if (n <= 0) return 2;
	double *lat = calloc(n, sizeof *lat);
	extern char **environ;
	for (long i = 0; i < n; i++) {
		char *prog = argv[2 + i % nprog];
		char *args[] = {prog, NULL};
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		pid_t pid = vfork();
		if (pid == 0) {
			execve(prog, args, environ);
			_exit(127);
		}
		int st;
		if (pid < 0 || waitpid(pid, &st, 0) < 0) {
			perror("gatebench");
			return 1;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "gatebench: %s exited with status %d\n", prog, st);
			return 1;
		}
		lat[i] = (t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3;
	}
	double sum = 0;
	for (long i = 0; i < n; i++) sum += lat[i];
	qsort(lat, n, sizeof *lat, cmp);
	printf("n=%ld p50=%.1f p99=%.1f mean=%.1f min=%.1f max=%.1f\n", n, lat[n / 2], lat[(long)(n * 0.99)],
	       sum / n, lat[0], lat[n - 1]);
	return 0;
}
