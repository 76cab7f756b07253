"""Record layouts: cache-line sizes, C header agreement, numba access."""
import pathlib
import subprocess
import sys

import numba
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ctrader.core import records as R

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_every_record_is_whole_cache_lines():
    assert set(R.RECORDS) == {"md_event", "order_intent", "exec_event", "candidate"}
    for name, dt in R.RECORDS.items():
        assert dt.itemsize % R.CACHE_LINE == 0, name
        assert dt.isalignedstruct, name


def test_fingerprint_changes_with_layout():
    other = R.cache_aligned("_probe", [("symbol_id", np.int64)])
    R.RECORDS.pop("_probe")
    assert R.fingerprint(R.MD_EVENT) != R.fingerprint(other)
    assert R.fingerprint(R.MD_EVENT) == R.fingerprint(np.dtype(R.MD_EVENT))


def test_generated_c_header_is_current():
    # The header is generated from records.py at build time; --check proves the built one matches.
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_records_header.py"), "--check"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr


@numba.njit(cache=True)
def _mid_prices(events, out):
    for i in range(events.shape[0]):
        out[i] = 0.5 * (events[i]["bid_px"][0] + events[i]["ask_px"][0])


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=200, deadline=None)
@given(symbol=st.integers(0, 2**31 - 1), ids=st.tuples(st.integers(0, 2**62), st.integers(0, 2**62)),
       bid=finite, ask=finite, flags=st.integers(0, 31))
def test_md_event_round_trips_through_bytes_and_numba(symbol, ids, bid, ask, flags):
    ev = np.zeros(1, R.MD_EVENT)
    ev["symbol_id"], ev["flags"] = symbol, flags
    ev["first_update_id"], ev["last_update_id"] = ids
    ev["bid_px"][0, 0], ev["ask_px"][0, 0] = bid, ask
    back = np.frombuffer(ev.tobytes(), dtype=R.MD_EVENT)
    assert back.tobytes() == ev.tobytes()
    assert back["symbol_id"][0] == symbol and back["last_update_id"][0] == ids[1]
    out = np.zeros(1)
    _mid_prices(back, out)
    expected = 0.5 * (bid + ask)
    assert out[0] == expected or (np.isnan(out[0]) and np.isnan(expected))


@settings(max_examples=100, deadline=None)
@given(cid=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:/",
                   min_size=1, max_size=36),
       ticks=st.integers(-2**63, 2**63 - 1), steps=st.integers(0, 2**63 - 1))
def test_order_intent_keeps_exact_ticks_and_client_id(cid, ticks, steps):
    it = np.zeros(1, R.ORDER_INTENT)
    it["client_order_id"], it["price_ticks"], it["qty_steps"] = cid.encode(), ticks, steps
    back = np.frombuffer(it.tobytes(), dtype=R.ORDER_INTENT)
    assert back["client_order_id"][0].decode() == cid
    assert int(back["price_ticks"][0]) == ticks and int(back["qty_steps"][0]) == steps
