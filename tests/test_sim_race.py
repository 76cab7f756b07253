"""The simulator's race: scheduled dislocations, first-frame and order stamps, attribution.

A scripted client drives a paused market step by step: an order before the dislocation, the
first frame of the dislocated leg, an order on a symbol of its triangles (the answer), a REST
order after it (recorded, not the first), an order on a symbol no triangle of the leg trades.
"""
from __future__ import annotations

import asyncio
import socket
import time
from decimal import ROUND_CEILING, Decimal

import aiohttp
import orjson
import pytest

from ctrader.benchmarks.race.market import load_rules
from ctrader.sim import kstamps
from ctrader.sim.kstamps import TxStamp
from ctrader.sim.market import ScheduledDislocation
from ctrader.sim.race import OrderArrival, RaceDislocation, attribute, available_profit, make_schedule
from ctrader.venue.decimals import ONE

pytestmark = pytest.mark.timeout(90)


def far_buy(rules, symbol: str, bid_units: int) -> dict:
    """A valid LIMIT IOC buy 2% under the bid that never fills."""
    r = rules[symbol]
    price = Decimal(r.price_text(Decimal(bid_units) / ONE * Decimal("0.98")))
    qty = max(r.min_qty, (r.min_notional * 2 / price / r.step).to_integral_value(ROUND_CEILING) * r.step)
    return {"symbol": symbol, "side": "BUY", "type": "LIMIT", "timeInForce": "IOC", "price": str(price),
            "quantity": str(qty)}


async def ws_order(api, signer, params: dict, client_id: str) -> dict:
    params = signer.signed_ws_params(dict(params, newClientOrderId=client_id, timestamp=int(time.time() * 1000)))
    await api.send_str(orjson.dumps({"id": client_id, "method": "order.place", "params": params}).decode())
    while True:
        doc = orjson.loads((await api.receive()).data)
        if doc.get("id") == client_id:
            return doc


async def first_frame(stream, symbol: str) -> dict:
    while True:
        doc = orjson.loads((await asyncio.wait_for(stream.receive(), 10)).data)
        if doc["data"]["s"] == symbol:
            return doc["data"]


def test_first_frame_and_order_stamps_attribute_to_the_dislocation(sim_factory, sim_account):
    sim = sim_factory({"market.dislocations_per_min": 0})
    rules = load_rules(sim.rest_url)
    signer = sim_account.hmac_signer()
    sim.control.pause()
    started = sim.control.race_start(count=2, seed=11, interval_ms=500, duration_ms=200, bps=60.0, lead_ms=20)
    leg = started["schedule"][0]["symbol"]
    names = "/".join(f"{s.lower()}@bookTicker" for s in rules)

    async def scenario() -> dict:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{sim.ws_url}/stream?streams={names}") as stream, \
                    http.ws_connect(sim.ws_api_url + "?returnRateLimits=false") as api:
                bid = sim.control.book(leg, 1)[1][0][0]
                early = await ws_order(api, signer, far_buy(rules, leg, bid), "early")
                sim.control.step(3)                       # the dislocation opens at the second step
                frame = await first_frame(stream, leg)
                open_now = sim.control.race_report()["dislocations"][0]
                related = sorted(open_now["symbols"])
                unrelated = min(set(rules) - set(related))
                answer = await ws_order(api, signer, far_buy(rules, leg, int(Decimal(frame["b"]) * ONE)), "answer")
                other_bid = sim.control.book(unrelated, 1)[1][0][0]
                stray = await ws_order(api, signer, far_buy(rules, unrelated, other_bid), "stray")
                rest_params = dict(far_buy(rules, related[0], sim.control.book(related[0], 1)[1][0][0]),
                                   newClientOrderId="second", timestamp=int(time.time() * 1000))
                async with http.post(f"{sim.rest_url}/api/v3/order", data=signer.signed_query(rest_params),
                                     headers={"X-MBX-APIKEY": signer.api_key,
                                              "Content-Type": "application/x-www-form-urlencoded"}) as resp:
                    assert resp.status == 200, await resp.text()
                for doc in (early, answer, stray):
                    assert doc["status"] == 200 and doc["result"]["status"] == "EXPIRED", doc
                sim.control.step(25)                      # 200 ms of market: the dislocation closes
                return sim.control.race_report()

    report = asyncio.run(asyncio.wait_for(scenario(), 60))
    kernel_tx = report["stamps"]["frame_out"].startswith("kernel")
    kernel_rx = report["stamps"]["order_in"].startswith("kernel")
    d = report["dislocations"][0]
    assert d["id"] == 1 and d["symbol"] == leg and d["closed_ns"] > d["opened_ns"]
    assert d["available_profit_usdt"] > 0 and len(d["available_path"]) == 3 and leg in d["available_path"]
    frame = d["frames"]["main"]
    assert frame["user_ns"] > d["opened_ns"] and (frame["kernel_ns"] > 0) == kernel_tx

    orders = {o["client_order_id"]: o for o in report["orders"]}
    assert set(orders) == {"early", "answer", "stray", "second"}
    assert {o["transport"] for o in orders.values()} == {"ws", "rest"} and orders["second"]["transport"] == "rest"
    for o in orders.values():
        assert o["account"] == sim_account.name and o["api_key"] == sim_account.api_key and o["tag"] == "main"
        assert o["status"] == "EXPIRED" and o["order_id"] > 0 and (o["arrived_kernel_ns"] > 0) == kernel_rx
    assert orders["early"]["arrived_user_ns"] < frame["user_ns"] < orders["answer"]["arrived_user_ns"]

    (answer,) = report["answers"]                  # the early order came before, the stray trades elsewhere,
    assert answer["dislocation"] == 1              # the REST order was not the account's first
    assert answer["client_order_id"] == "answer" and answer["symbol"] == leg and answer["side"] == "BUY"
    assert answer["stamps"] == ("kernel" if kernel_tx and kernel_rx else "user") and answer["reaction_ns"] > 0
    if kernel_tx and kernel_rx:
        assert answer["reaction_ns"] == orders["answer"]["arrived_kernel_ns"] - frame["kernel_ns"]
    acct = report["accounts"][sim_account.name]
    assert acct["orders"] == 4 and acct["fills"] == 0 and acct["pnl_usdt"] == 0.0


def _dislocation(id_: int, symbols: set[str], frames: dict, opened: int, closed: int | None) -> RaceDislocation:
    rec = RaceDislocation(id=id_, symbol=min(symbols), bps=60.0, symbols=frozenset(symbols), triangles=[],
                          opened_market_ms=0, opened_ns=opened, asset_values={}, closed_ns=closed)
    for i, (tag, (user, kernel)) in enumerate(frames.items()):
        rec.frames[(tag, i)] = (tag, TxStamp(user, kernel))
    return rec


def _order(seq: int, account: str, tag: str, symbol: str, user: int, kernel: int = 0) -> OrderArrival:
    return OrderArrival(seq, account, f"{account}-key", tag, "ws", symbol, "BUY", f"c{seq}", user, kernel)


def test_attribution_rules():
    tri = {"BTCUSDT", "ETHBTC", "ETHUSDT"}
    d1 = _dislocation(1, tri, {"a": (1000, 900), "b": (1100, 0)}, opened=500, closed=5000)
    d2 = _dislocation(2, tri, {"a": (8000, 7900)}, opened=7500, closed=None)
    orders = [
        _order(0, "A", "a", "ETHBTC", 950, 940),         # before a's first frame: not an answer
        _order(1, "A", "a", "SOLBNB", 1200, 1190),       # a symbol no triangle of the leg trades
        _order(2, "A", "a", "ETHUSDT", 1300, 1250),      # A's answer: kernel stamps on both ends
        _order(3, "A", "a", "BTCUSDT", 1400, 1390),      # A's second order: not the first
        _order(4, "B", "b", "BTCUSDT", 1500, 1480),      # B's answer: its frame has no kernel stamp
        _order(5, "A", "a", "ETHUSDT", 6000, 5990),      # between d1's close and d2's first frame
        _order(6, "A", "a", "ETHBTC", 9000, 8950),       # A's answer to d2, still open
        _order(7, "C", "c", "ETHBTC", 9100, 9050),       # C has no frame of d2 on its tag
    ]
    answers = {(a["dislocation"], a["account"]): a for a in attribute([d1, d2], orders)}
    assert set(answers) == {(1, "A"), (1, "B"), (2, "A")}
    assert answers[(1, "A")]["order"] == 2 and answers[(1, "A")]["reaction_ns"] == 1250 - 900
    assert answers[(1, "A")]["stamps"] == "kernel" and answers[(1, "A")]["reaction_user_ns"] == 300
    assert answers[(1, "B")]["order"] == 4 and answers[(1, "B")]["stamps"] == "user"
    assert answers[(1, "B")]["reaction_ns"] == 1500 - 1100
    assert answers[(2, "A")]["order"] == 6 and answers[(2, "A")]["reaction_ns"] == 8950 - 7900


def test_schedule_is_seeded_and_spaced():
    triangles = [("BTCUSDT", "ETHBTC", "ETHUSDT"), ("BNBBTC", "BNBUSDT", "BTCUSDT")]
    a = make_schedule(triangles, seed=3, count=6, start_ms=100, interval_ms=2000, duration_ms=800, bps=50.0)
    assert a == make_schedule(triangles, seed=3, count=6, start_ms=100, interval_ms=2000, duration_ms=800, bps=50.0)
    assert a != make_schedule(triangles, seed=4, count=6, start_ms=100, interval_ms=2000, duration_ms=800, bps=50.0)
    assert [s.at_ms for s in a] == [100 + 2000 * k for k in range(6)]
    assert all(isinstance(s, ScheduledDislocation) and abs(s.bps) == 50.0 and s.duration_ms == 800 for s in a)
    assert all(any(s.symbol in t for t in triangles) for s in a)
    with pytest.raises(ValueError, match="closed before the next opens"):
        make_schedule(triangles, seed=3, count=2, start_ms=0, interval_ms=500, duration_ms=500, bps=50.0)


def test_available_profit_walks_the_books():
    # USDT -> BTC -> ETH -> USDT with ETHUSDT bid dislocated 1% up: buy BTC, buy ETH with BTC, sell ETH
    def lv(*pairs):
        return [(int(p * ONE), int(q * ONE)) for p, q in pairs]
    rec = RaceDislocation(id=1, symbol="ETHUSDT", bps=100.0, symbols=frozenset({"BTCUSDT", "ETHBTC", "ETHUSDT"}),
                          triangles=[("BTCUSDT", "ETHBTC", "ETHUSDT")], opened_market_ms=0, opened_ns=0,
                          asset_values={"USDT": 1.0, "BTC": 60000.0, "ETH": 3000.0})
    rec.books = {"BTCUSDT": (lv((59999, 1)), lv((60000, 1))),
                 "ETHBTC": (lv((0.04999, 10)), lv((0.05, 10))),
                 "ETHUSDT": (lv((3030, 2), (3000, 50)), lv((3031, 2)))}
    assets = {"BTCUSDT": ("BTC", "USDT"), "ETHBTC": ("ETH", "BTC"), "ETHUSDT": ("ETH", "USDT")}
    profit, path = available_profit(rec, assets, fee=0.0)
    # 2 ETH sold at 3030 instead of 3000: about 60 USDT; the 3000 level adds nothing
    assert profit == pytest.approx(60.0, rel=0.01) and path == ["ETHBTC", "ETHUSDT", "BTCUSDT"]   # from BTC
    with_fees, _ = available_profit(rec, assets, fee=0.001)
    assert 0 < with_fees < profit


def test_stamping_socket_stamps_marked_writes_and_reads():
    support = kstamps.probe()
    listener = kstamps.listen("127.0.0.1", 0, "t1", support)
    listener.setblocking(True)
    try:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        with client, server:
            assert isinstance(server, kstamps.StampingSocket) and server.tag == "t1"
            assert kstamps.socket_of(None) is None
            server.send(b"plain")                          # unmarked: no stamp asked for
            stamp = TxStamp()
            server.stamp_next_write(stamp)
            before = time.monotonic_ns()
            server.send(b"marked")
            assert before <= stamp.user_ns <= time.monotonic_ns()
            if support.tx:
                server.collect_tx_stamps()
                assert 0 < stamp.kernel_ns <= stamp.user_ns + 1_000_000
            received = b""
            while len(received) < len(b"plainmarked"):
                received += client.recv(64)
            assert received == b"plainmarked"
            client.sendall(b"order")
            assert server.recv(64) == b"order"
            assert (server.rx_ns > before) == support.rx
    finally:
        listener.close()


def test_tx_stamps_match_their_writes_when_the_client_falls_behind():
    """A slow client: marked writes pile up unsent, TCP merges them into few packets and the kernel
    reports a stamp for few of them (here only the first and the last of 300). Each kernel stamp
    must still go to the write it was taken for (matched by byte offset, not by order): the last
    write gets one, and none is earlier than the call that made its write."""
    support = kstamps.probe()
    if not support.tx:
        pytest.skip("no kernel TX timestamps here")
    listener = kstamps.listen("127.0.0.1", 0, "slow", support)
    listener.setblocking(True)
    try:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(listener.getsockname())
        server, _ = listener.accept()
        with client, server:
            server.setblocking(False)
            chunk = b"z" * 3000
            writes, received, total = [], 0, 0
            while len(writes) < 300:
                stamp, started = TxStamp(), time.monotonic_ns()
                server.stamp_next_write(stamp)
                try:
                    total += server.send(chunk)
                    writes.append((started, stamp))
                except BlockingIOError:                  # the stamp waits for the next write
                    server._tx_waiting.clear()
                    received += len(client.recv(65536))
            client.setblocking(False)
            deadline = time.monotonic() + 10
            while received < total and time.monotonic() < deadline:
                try:
                    received += len(client.recv(1 << 20))
                except BlockingIOError:
                    server.collect_tx_stamps()
            server.collect_tx_stamps()
            assert received == total
            kernel = [(started, s) for started, s in writes if s.kernel_ns]
            assert writes[0][1].kernel_ns and writes[-1][1].kernel_ns
            assert all(s.user_ns >= started for started, s in writes)
            assert all(s.kernel_ns >= started - 1_000_000 for started, s in kernel)
            assert [s.kernel_ns for _, s in kernel] == sorted(s.kernel_ns for _, s in kernel)
    finally:
        listener.close()
