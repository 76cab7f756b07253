/* Wake-up costs on this machine: a futex wake across processes vs a 1 µs nanosleep.

   gcc -O2 -o /tmp/wake tools/probes/wake.c && /tmp/wake

   The measurement behind the rings' BLOCK wait (ctrader/core/wait.py): a producer's futex wake
   reaches a sleeping consumer in a few µs, while a polling sleeper pays a whole timer wake-up
   (>= 16 µs here even with 1 µs timer slack) per poll. */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define N 2000
static long futex(uint32_t *a, int op, uint32_t v) { return syscall(SYS_futex, a, op, v, NULL, NULL, 0); }
static uint64_t now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000ull + t.tv_nsec; }
static int cmp(const void *a, const void *b) { uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b; return x < y ? -1 : x > y; }
static void report(const char *what, uint64_t *d) {
    qsort(d, N, 8, cmp);
    printf("%-34s p50 %6.1f  p90 %6.1f  p99 %6.1f us\n", what, d[N / 2] / 1e3, d[N * 9 / 10] / 1e3, d[N * 99 / 100] / 1e3);
}
int main(void) {
    uint32_t *word = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint64_t *ts = mmap(NULL, 16 * N, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    static uint64_t d[N];
    if (fork() == 0) {                       /* the sleeper: waits for each value in turn */
        for (int i = 0; i < N; i++) {
            while (__atomic_load_n(word, __ATOMIC_ACQUIRE) == (uint32_t)i) futex(word, FUTEX_WAIT, i);
            ts[N + i] = now();
        }
        exit(0);
    }
    usleep(10000);
    for (int i = 0; i < N; i++) {            /* the producer: publish, wake, 100 µs apart */
        usleep(100);
        ts[i] = now();
        __atomic_store_n(word, i + 1, __ATOMIC_RELEASE);
        futex(word, FUTEX_WAKE, 1);
    }
    wait(NULL);
    for (int i = 0; i < N; i++) d[i] = ts[N + i] - ts[i];
    report("futex wake -> other process runs", d);
    for (int slack = 0; slack < 2; slack++) {
        if (slack) prctl(PR_SET_TIMERSLACK, 1000, 0, 0, 0);
        struct timespec req = {0, 1000};
        for (int i = 0; i < N; i++) { uint64_t t = now(); nanosleep(&req, NULL); d[i] = now() - t; }
        report(slack ? "nanosleep(1 us), 1 us timer slack" : "nanosleep(1 us), default slack", d);
    }
    return 0;
}
