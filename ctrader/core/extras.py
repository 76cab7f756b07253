"""Optional dependencies: what trading needs is always installed; training, HTML reports and
peer benchmarks come with extras (``pip install 'ctrader[train]'``). Code that needs one calls
``require`` before its work starts, so a missing package stops it at once with the extra to
install, not with a bare ImportError minutes into a run:

    require("train", "sklearn", "skl2onnx")     # raises MissingExtra naming ctrader[train]

The CLI prints the message and exits with ``EXIT_CODE``.
"""
from __future__ import annotations

import importlib

# extra -> (import name, distribution name) of what it brings; the distribution names are the
# ones in pyproject.toml's optional-dependencies.
EXTRAS: dict[str, tuple[tuple[str, str], ...]] = {
    "train": (("sklearn", "scikit-learn"), ("skl2onnx", "skl2onnx"), ("onnx", "onnx")),
    "report": (("plotly", "plotly"),),
    "peers": (("hftbacktest", "hftbacktest"), ("cryptofeed", "cryptofeed")),
}

EXIT_CODE = 3


class MissingExtra(ImportError):
    """A package of an optional extra is not installed."""

    def __init__(self, extra: str, module: str, distribution: str) -> None:
        self.extra, self.module, self.distribution = extra, module, distribution
        super().__init__(f"this needs {distribution}, which comes with the [{extra}] extra: "
                         f"pip install 'ctrader[{extra}]'", name=module)


def require(extra: str, *modules: str) -> None:
    """Import each of ``modules`` (default: every package of ``extra``); ``MissingExtra`` names
    the extra when one is absent."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    distributions = dict(EXTRAS[extra])
    for module in modules or tuple(distributions):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingExtra(extra, module, distributions.get(module, module)) from exc

