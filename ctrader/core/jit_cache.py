"""Where numba keeps compiled kernels: one cache directory per version of our sources.

numba's on-disk cache (``cache=True``) is keyed on the file of the function being compiled,
not on the functions it calls: a kernel in ``rings.py`` that inlines ``ring_numba.read_rows``
keeps the old ``read_rows`` after ``ring_numba.py`` changes. We saw exactly that: a layout
change, a stale cached caller, and two processes disagreeing about the ring. Keying the
cache directory on every ctrader source file (size and mtime: stat calls only, no reads) makes
any change start a fresh cache.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import sys

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent.parent


def source_fingerprint() -> str:
    digest = hashlib.blake2b(digest_size=8)
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        st = path.stat()
        digest.update(f"{path.relative_to(PACKAGE_DIR)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return digest.hexdigest()


def configure_numba_cache() -> None:
    """Point numba's cache at a directory for this exact source tree, unless the user chose one."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    base = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache"))
    cache_dir = str(base / "ctrader" / "numba" / source_fingerprint())
    os.environ["NUMBA_CACHE_DIR"] = cache_dir
    if "numba" in sys.modules:  # imported before us: its config has already read the environment
        sys.modules["numba"].config.CACHE_DIR = cache_dir
