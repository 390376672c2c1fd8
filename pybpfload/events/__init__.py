"""Events from BPF programs to user space (and back): BPF ring buffers
(:mod:`.ringbuf`: RingBuffer, UserRingBuffer) and perf buffers
(:mod:`.perfbuf`: PerfBuffer), mmapped and waited on with epoll or asyncio.
"""
