"""Network addresses: what counts as loopback, for every server that refuses to listen elsewhere
without being told (the simulator, the monitor)."""
from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``. Any other name is not: it may
    resolve anywhere."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
