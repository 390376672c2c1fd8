// libbpf's side of benchmarks/bench_btf.py: parse a BTF file and find a
// struct by name, N times, in one process; prints the median in ms.
#include <bpf/btf.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "/sys/kernel/btf/vmlinux";
	const char *name = argc > 2 ? argv[2] : "task_struct";
	int runs = argc > 3 ? atoi(argv[3]) : 7;
	double t[64];

	if (runs < 1 || runs > 64)
		runs = 7;
	for (int i = 0; i < runs; i++) {
		double t0 = now_ms();
		struct btf *btf = btf__parse(path, NULL);
		if (!btf)
			return 1;
		if (btf__find_by_name_kind(btf, name, BTF_KIND_STRUCT) < 0)
			return 2;
		t[i] = now_ms() - t0;
		btf__free(btf);
	}
	qsort(t, runs, sizeof(t[0]), cmp);
	printf("%.3f\n", t[runs / 2]);
	return 0;
}
