// libbpf's side of bench_core.py: time from bpf_object__load() to the first
// program's prepare callback (probe, vmlinux BTF parse, BTF load, CO-RE
// relocation), which then cancels the load.  Prints one time in ns per run.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <bpf/libbpf.h>

static struct timespec t_done;
static int captured;

static int prepare(struct bpf_program *prog, struct bpf_prog_load_opts *opts, long cookie)
{
	clock_gettime(CLOCK_MONOTONIC, &t_done);
	captured = 1;
	return -ECANCELED;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap) { return 0; }

int main(int argc, char **argv)
{
	int runs = argc > 2 ? atoi(argv[2]) : 5;
	LIBBPF_OPTS(libbpf_prog_handler_opts, hopts, .prog_prepare_load_fn = prepare);

	libbpf_set_print(quiet);
	if (libbpf_register_prog_handler("raw_tp+", BPF_PROG_TYPE_RAW_TRACEPOINT, 0, &hopts) < 0)
		return 2;
	for (int i = 0; i < runs; i++) {
		struct timespec t0;
		struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);

		if (!obj)
			return 3;
		captured = 0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		bpf_object__load(obj);
		if (!captured)
			return 4;
		printf("%lld\n", (long long)(t_done.tv_sec - t0.tv_sec) * 1000000000LL + (t_done.tv_nsec - t0.tv_nsec));
		bpf_object__close(obj);
	}
	return 0;
}
