"""ctrader installed as a user installs it: a source distribution, ``pip install`` (not editable)
into a fresh virtualenv, then commands run from a directory that is not the checkout.

This is the one test that builds and installs the whole package (about a minute, most of it
pip copying the dependencies out of its cache): the configurations and the default model must
be package data, the Cython extensions must build from the sdist (setup.py generates
ext/records.h from records.py there too), and a missing extra must be named.
"""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"


def _run(cmd, cwd, env, timeout=600) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{cmd}\nstdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    return result


@pytest.mark.slow
def test_sdist_installs_into_a_fresh_venv_and_runs_from_anywhere(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CTRADER_CONFIG")}
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "uv", "build", "--sdist", "--no-build-isolation", "--python", sys.executable,
          "-o", dist, ROOT], cwd=tmp_path, env=env)
    (sdist,) = dist.glob("ctrader-*.tar.gz")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp_path, env=env)
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", "-c", LOCK, sdist], cwd=tmp_path, env=env,
         timeout=900)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env["CTRADER_DATA_DIR"] = str(tmp_path / "data")
    ctrader = venv / "bin" / "ctrader"

    def cli(*args, code=0):
        r = subprocess.run([str(ctrader), *map(str, args)], cwd=elsewhere, env=env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == code, f"ctrader {' '.join(map(str, args))}: {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    assert "Usage" in cli("--help").stdout
    assert "--seed" in cli("sim", "--help").stdout
    shown = tomllib.loads(cli("config", "show").stdout)
    assert shown["venue"]["kind"] == "sim" and shown["run"]["data_dir"] == str(tmp_path / "data")
    # the shipped configurations, by name, and a user's file
    # (binance-live without keys: the pre-flight says what is missing, exit 2)
    refused = cli("config", "check", "binance-live", code=2)
    assert "needs API credentials" in refused.stdout + refused.stderr
    assert "binance-paper: ok" in cli("config", "check", "binance-paper").stdout
    mine = elsewhere / "mine.toml"
    mine.write_text('[risk]\nmax_order_notional = 10\n')
    assert "ok" in cli("config", "check", mine).stdout
    assert tomllib.loads(cli("--config", "binance-paper", "config", "show").stdout)["venue"]["kind"] == "binance"
    listed = cli("config", "list").stdout
    assert "binance-testnet" in listed and str(venv) in listed      # read from the installed package
    # the packaged default model, and the compiled extensions
    assert "default" in cli("model", "list").stdout
    _run([venv / "bin" / "python", "-c", "import ctrader._ext._ring, ctrader._ext.feed_parse"], cwd=elsewhere,
         env=env)
    # the embedded store works from the installed package
    assert "schema version" in cli("db", "info").stdout
    # trading dependencies only: the [train] and [report] extras are named when needed
    r = cli("model", "train", "--from-sim", code=3)
    assert "pip install 'ctrader[train]'" in r.stderr


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_lock_pins_every_declared_dependency():
    """requirements.lock is refreshed with tools/lock whenever pyproject.toml's dependencies change."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]}
    for reqs in project["optional-dependencies"].values():
        declared |= {_name(r) for r in reqs if _name(r) != "ctrader"}
    pinned = {_name(line) for line in LOCK.read_text().splitlines() if "==" in line and not line.startswith("#")}
    missing = sorted(declared - pinned)
    assert not missing, f"not pinned in requirements.lock (run tools/lock): {missing}"
    numpy = [line for line in LOCK.read_text().splitlines() if line.startswith("numpy==")]
    assert numpy and all(tuple(map(int, v.split("==")[1].split(" ")[0].split(".")[:2])) < (2, 3) for v in numpy), \
        "hftbacktest needs numpy < 2.3"
