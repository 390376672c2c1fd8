// libbpf's ring_buffer__consume on the same map and producer as
// bench_ringbuf.py: the C reference figure.  Built at run time by the
// benchmark when clang and libbpf-dev exist; never part of pybpfload.
//
//   bench_ringbuf_libbpf MAP_FD PROG_FD EVENTS ROUNDS PKT_SIZE
// prints "events seconds" (consumer time only, summed over rounds).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int noop(void *ctx, void *data, size_t size) { return 0; }

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: %s MAP_FD PROG_FD EVENTS ROUNDS PKT_SIZE\n", argv[0]);
		return 2;
	}
	int map_fd = atoi(argv[1]), prog_fd = atoi(argv[2]);
	int events = atoi(argv[3]), rounds = atoi(argv[4]), pkt_size = atoi(argv[5]);
	char pkt[4096];
	memset(pkt, 0x5a, sizeof(pkt));
	struct ring_buffer *rb = ring_buffer__new(map_fd, noop, NULL, NULL);
	if (!rb) {
		perror("ring_buffer__new");
		return 1;
	}
	long total = 0;
	double spent = 0;
	for (int r = 0; r < rounds; r++) {
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = pkt_size, .repeat = events);
		if (bpf_prog_test_run_opts(prog_fd, &opts)) {
			perror("bpf_prog_test_run_opts");
			return 1;
		}
		double t = now();
		int n = ring_buffer__consume(rb);
		spent += now() - t;
		if (n < 0) {
			fprintf(stderr, "ring_buffer__consume: %d\n", n);
			return 1;
		}
		total += n;
	}
	printf("%ld %.9f\n", total, spent);
	ring_buffer__free(rb);
	return 0;
}
