"""Ring benchmarks under pytest-benchmark:  .venv/bin/python -m pytest bench/ --benchmark-only -s"""
import numpy as np

from ctrader.benchmarks import rings
from ctrader.core.records import MD_EVENT
from ctrader.core.ring import Ring


def _record(benchmark, results: dict) -> None:
    benchmark.extra_info.update(results)
    print({k: round(v, 1) for k, v in results.items()})


def test_pingpong_one_way(benchmark):
    _record(benchmark, benchmark.pedantic(rings.bench_pingpong, args=(200_000,), rounds=1, iterations=1))


def test_ring_one_hop_64b(benchmark):
    _record(benchmark, benchmark.pedantic(rings.bench_ring_latency, args=(200_000, rings.LINE_RECORD),
                                          rounds=1, iterations=1))


def test_ring_throughput_numba_to_numba(benchmark):
    rate = benchmark.pedantic(rings._run_throughput, args=(5_000_000, False), rounds=1, iterations=1)
    queue_rate = rings.bench_queue(50_000)
    _record(benchmark, {"records_per_s": rate, "mp_queue_records_per_s": queue_rate,
                        "ratio": rate / queue_rate})


def test_cython_write_read_one_md_event(benchmark):
    """In-process cost of the Python API: one md_event written and read back."""
    with Ring.create(f"ctrader.benchpy{np.random.randint(1 << 30)}", MD_EVENT, 1024) as ring:
        producer, consumer = ring.producer(), ring.consumer()
        event, out = np.zeros(1, MD_EVENT), np.empty(1, MD_EVENT)

        def hop():
            producer.write(event)
            return consumer.read_batch(out)

        assert benchmark(hop) == 1
