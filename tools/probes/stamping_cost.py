"""What the race's stamping adds to the simulator's hot paths, with no race running.

    PYTHONPATH=. .venv/bin/python tools/probes/stamping_cost.py

Three figures, each beside its plain counterpart on the same socket, in interleaved batches so
that the machine's load falls on both alike (min and median per call):

* a write: ``StampingSocket.send`` (one check, one byte count) against ``socket.send``: what
  every market-stream flush pays;
* a request read: the stamping ``recv`` (``recvmsg`` and one ``SCM_TIMESTAMPING`` control
  message parsed) against ``socket.recv``, with the client's send in both: what every WS API
  request and REST read pays;
* the check ``StreamHub._publish`` makes for every message (``race_symbols`` empty).

See bench/BENCHMARKS.md, "Race".
"""
import socket
import statistics
import threading
import time
import timeit

from ctrader.sim import kstamps

support = kstamps.probe()
listener = kstamps.listen("127.0.0.1", 0, "probe", support)
listener.setblocking(True)
client = socket.create_connection(listener.getsockname())
server, _ = listener.accept()


def batches(label: str, ours, plain, rounds: int, per: int) -> None:
    res = {"stamping": [], "plain": []}
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(per):
            ours()
        t1 = time.perf_counter_ns()
        for _ in range(per):
            plain()
        t2 = time.perf_counter_ns()
        res["stamping"].append((t1 - t0) / per)
        res["plain"].append((t2 - t1) / per)
    for kind, v in res.items():
        print(f"{label:<22} {kind:<9} min {min(v):7.0f} ns  median {statistics.median(v):7.0f} ns")


stop = threading.Event()


def drain() -> None:
    client.settimeout(0.2)
    while not stop.is_set():
        try:
            client.recv(1 << 20)
        except socket.timeout:
            pass


reader = threading.Thread(target=drain)
reader.start()
payload = b"x" * 180
batches("write (180 B)", lambda: server.send(payload), lambda: socket.socket.send(server, payload), 200, 1000)
stop.set()
reader.join()

request = b"y" * 100
batches("request send + read", lambda: (client.send(request), server.recv(4096)),
        lambda: (client.send(request), socket.socket.recv(server, 4096)), 100, 500)


class Hub:
    race_symbols: dict = {}


hub, symbol = Hub(), "BTCUSDT"


def check() -> None:
    race = hub.race_symbols
    if race and symbol in race:
        pass


def empty() -> None:
    pass


n = 2_000_000
added = (min(timeit.repeat(check, number=n, repeat=5)) - min(timeit.repeat(empty, number=n, repeat=5))) / n * 1e9
print(f"publish check (no race): {added:.0f} ns per message")
print(f"kernel stamps: rx {support.rx}, tx {support.tx}; load average {' '.join(open('/proc/loadavg').read().split()[:3])}")
server.close()
client.close()
listener.close()
