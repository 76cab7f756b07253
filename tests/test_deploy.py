"""deploy/: the systemd unit and the Dockerfile, checked as far as this machine can.

The unit goes through ``systemd-analyze verify`` (when systemd is installed) and is read for the
settings the runbook relies on; the Dockerfile cannot be built here (no Docker engine), so every
file it copies must exist and survive .dockerignore, and its command must be one the CLI knows.
"""
from __future__ import annotations

import configparser
import fnmatch
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ctrader.cli.main import app

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "ctrader.service"
SESSION_STOP_TIMEOUT_S = 60      # ctrader.runtime.session: Supervisor.stop(timeout_s=60.0)

runner = CliRunner()


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(UNIT.read_text())
    return parser


def test_unit_restarts_on_failure_and_outwaits_the_orderly_stop():
    unit = _unit()
    service = unit["Service"]
    assert service["Restart"] == "on-failure"
    assert int(service["TimeoutStopSec"]) > SESSION_STOP_TIMEOUT_S
    assert service["KillMode"] == "mixed"              # SIGTERM to the supervisor only: it stops the rest in order
    assert service["EnvironmentFile"].startswith("/etc/")
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_unit_command_line_is_one_the_cli_accepts(tmp_path):
    argv = shlex.split(_unit()["Service"]["ExecStart"])
    assert argv[0].endswith("/bin/ctrader")
    args = argv[1:]
    config = args[args.index("--config") + 1]
    # the example config the unit's --config file is made from must be valid
    example = DEPLOY / "ctrader.toml.example"
    assert runner.invoke(app, ["config", "check", str(example)]).exit_code == 0
    args[args.index(config)] = str(example)
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "--processes" in result.output


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    # verify checks that ExecStart's program exists: point it at this environment's ctrader
    ctrader = pathlib.Path(sys.executable).parent / "ctrader"
    assert ctrader.exists()
    text = UNIT.read_text().replace("/opt/ctrader/bin/ctrader", str(ctrader))
    copy = tmp_path / "ctrader.service"
    copy.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ctrader.service" not in result.stderr, result.stderr     # no warning about our unit


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)                       # line continuations
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _ignored(path: str) -> bool:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    parts = pathlib.PurePosixPath(path).parts
    for pattern in patterns:
        pattern = pattern.removeprefix("**/")
        if any(fnmatch.fnmatch(part, pattern) for part in parts) or fnmatch.fnmatch(path, pattern):
            return True
    return False


def test_dockerfile_copies_only_files_that_exist_and_are_not_ignored():
    copies = [rest for word, rest in _dockerfile_instructions() if word == "COPY" and not rest.startswith("--from")]
    assert copies
    for rest in copies:
        *sources, _dest = rest.split()
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"COPY {source}: not in the checkout"
            assert not _ignored(source.rstrip("/")), f"COPY {source}: excluded by .dockerignore"
    copied = " ".join(copies)
    # what the build needs: setup.py's generator of ext/records.h, the Cython sources, the pins
    for needed in ("setup.py", "pyproject.toml", "tools/gen_records_header.py", "ext/", "ctrader/",
                   "requirements.lock", "MANIFEST.in"):
        assert needed in copied, needed


def test_dockerfile_installs_pinned_and_runs_a_known_command():
    instructions = _dockerfile_instructions()
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    assert "pip install" in runs and "-c requirements.lock ." in runs
    (entry,) = [rest for word, rest in instructions if word == "ENTRYPOINT"]
    (cmd,) = [rest for word, rest in instructions if word == "CMD"]
    import json

    assert json.loads(entry) == ["ctrader"]
    result = runner.invoke(app, [*json.loads(cmd), "--help"])
    assert result.exit_code == 0, result.output
    assert ("STOPSIGNAL", "SIGTERM") in instructions
