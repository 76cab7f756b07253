"""How much slower the executor's system calls are after the process sat idle.

    python3 tools/probes/cold_syscalls.py

Times the calls on the executor's order path: the kill-file check (``os.path.exists``: a stat
with a path walk), a journal line (``os.write`` to a file in the home directory) and a clock
reading, back to back and after sleeping 1 / 10 / 100 ms. On the 2-vCPU test VM (nested
virtualisation) the stat took 1.5 µs back to back and ~41 µs after 10 ms; the write 0.9 and
~16 µs. This is why the executor reads the kill file once per batch and writes a batch's
journal lines with as few calls as it can (see bench/BENCHMARKS.md, "End to end").
"""
import os
import statistics
import tempfile
import time

LINE = b'{"k":"intent","client_order_id":"ct1-0","group_id":1,"leg":0,"n_legs":3}' * 3 + b"\n"


def probe(fd: int, kill_path: str, idle_s: float, n: int = 300) -> str:
    stat_ns, write_ns, clock_ns = [], [], []
    for _ in range(n):
        if idle_s:
            time.sleep(idle_s)
        t0 = time.perf_counter_ns()
        os.path.exists(kill_path)
        t1 = time.perf_counter_ns()
        os.write(fd, LINE)
        t2 = time.perf_counter_ns()
        time.monotonic_ns()
        t3 = time.perf_counter_ns()
        stat_ns.append(t1 - t0)
        write_ns.append(t2 - t1)
        clock_ns.append(t3 - t2)

    def q(v: list[int]) -> str:
        return f"{statistics.median(v) / 1e3:.1f} / {sorted(v)[int(len(v) * 0.9)] / 1e3:.1f}"

    return (f"idle {idle_s * 1e3:5.1f} ms: stat {q(stat_ns)} µs, write {q(write_ns)} µs, "
            f"clock {q(clock_ns)} µs (p50 / p90)")


def main() -> None:
    with tempfile.TemporaryDirectory(dir=os.path.expanduser("~")) as tmp:
        fd = os.open(os.path.join(tmp, "journal"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            for idle_s in (0.0, 0.001, 0.01, 0.1):
                print(probe(fd, os.path.join(tmp, "KILL"), idle_s))
        finally:
            os.close(fd)


if __name__ == "__main__":
    main()
