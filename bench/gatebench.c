// gatebench: times vfork+exec+wait of programs, one per iteration, for
// bench/gate.sh. Usage: gatebench N LABEL:PROG [LABEL:PROG...]
// Iteration i runs the (i mod count)-th program, so programs given in turn
// are measured interleaved, under the same load; latencies are kept per
// label. Prints one line per label:
//   LABEL n=.. p50=.. p99=.. mean=.. min=..   (microseconds)
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#define MAXLABELS 8

static int cmp(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: %s N LABEL:PROG [LABEL:PROG...]\n", argv[0]);
		return 2;
	}
	long n = atol(argv[1]);
	int nprog = argc - 2;
	if (n <= 0) return 2;
	char *labels[MAXLABELS];
	int nlabels = 0, *lab = calloc(nprog, sizeof *lab);
	char **prog = calloc(nprog, sizeof *prog);
	for (int i = 0; i < nprog; i++) {
		char *a = argv[2 + i], *c = strchr(a, ':');
		if (!c) { fprintf(stderr, "gatebench: %s: want LABEL:PROG\n", a); return 2; }
		*c = 0;
		prog[i] = c + 1;
		int j;
		for (j = 0; j < nlabels && strcmp(labels[j], a); j++);
		if (j == nlabels) {
			if (nlabels == MAXLABELS) return 2;
			labels[nlabels++] = a;
		}
		lab[i] = j;
	}
	double *lat[MAXLABELS];
	long cnt[MAXLABELS] = {0};
	for (int j = 0; j < nlabels; j++) lat[j] = calloc(n, sizeof(double));
	extern char **environ;
	for (long i = 0; i < n; i++) {
		int k = i % nprog;
		char *args[] = {prog[k], NULL};
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		pid_t pid = vfork();
		if (pid == 0) {
			execve(prog[k], args, environ);
			_exit(127);
		}
		int st;
		if (pid < 0 || waitpid(pid, &st, 0) < 0) {
			perror("gatebench");
			return 1;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "gatebench: %s exited with status %d\n", prog[k], st);
			return 1;
		}
		lat[lab[k]][cnt[lab[k]]++] = (t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3;
	}
	for (int j = 0; j < nlabels; j++) {
		long m = cnt[j];
		if (m == 0) continue;
		double sum = 0;
		for (long i = 0; i < m; i++) sum += lat[j][i];
		qsort(lat[j], m, sizeof(double), cmp);
		printf("%s n=%ld p50=%.1f p99=%.1f mean=%.1f min=%.1f\n", labels[j], m, lat[j][m / 2],
		       lat[j][(long)(m * 0.99)], sum / m, lat[j][0]);
	}
	return 0;
}
