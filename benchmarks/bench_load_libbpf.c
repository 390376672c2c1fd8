// libbpf column of bench_load.py: open + load + close of one object, N times.
// Prints the first (cold) and the best time in milliseconds.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <bpf/libbpf.h>

static int quiet(enum libbpf_print_level l, const char *f, va_list a) { return 0; }

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	int n = argc > 2 ? atoi(argv[2]) : 10;
	double first = 0, best = 1e18;

	libbpf_set_print(quiet);
	for (int i = 0; i < n; i++) {
		double t = now_ms();
		struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
		if (!obj || bpf_object__load(obj)) {
			fprintf(stderr, "failed to open/load %s\n", argv[1]);
			return 1;
		}
		bpf_object__close(obj);
		t = now_ms() - t;
		if (i == 0)
			first = t;
		if (t < best)
			best = t;
	}
	printf("%.3f %.3f\n", first, best);
	return 0;
}
