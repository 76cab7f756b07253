"""ctrader: a low-latency arbitrage trading system for Binance Spot."""
from importlib.metadata import PackageNotFoundError, version as _pkg_version

from ctrader.core.jit_cache import configure_numba_cache

try:
    __version__ = _pkg_version("ctrader")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

configure_numba_cache()
