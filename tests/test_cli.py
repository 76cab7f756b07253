"""The command line: --help everywhere, version, config show/check, logging set-up."""
import json
import logging
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ctrader.cli.main import app
from ctrader.core.logs import setup_logging

runner = CliRunner()


def _commands(group, prefix=()):
    import typer.main

    click_cmd = typer.main.get_command(group)
    stack = [(prefix, click_cmd)]
    while stack:
        path, cmd = stack.pop()
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            stack.append((path + (name,), sub))


def test_every_command_has_help():
    paths = list(_commands(app))
    assert ("version",) in paths and ("config", "show") in paths and ("bench",) in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_version():
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and result.output.startswith("ctrader ")


def test_config_show_prints_toml_and_json_without_secrets():
    env = {"CTRADER_API_SECRET": "supersecretvalue123"}
    result = runner.invoke(app, ["config", "show"], env=env)
    assert result.exit_code == 0 and "[venue]" in result.output
    assert "supersecretvalue123" not in result.output
    result = runner.invoke(app, ["--set", "sim.port=19999", "config", "show", "--json"], env=env)
    assert json.loads(result.output)["sim"]["port"] == 19999


def test_config_check(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[run]\nlog_format = "json"\n')
    assert runner.invoke(app, ["config", "check", str(good)]).exit_code == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('[run]\nlog_format = "xml"\n')
    result = runner.invoke(app, ["config", "check", str(bad)])
    assert result.exit_code == 2
    assert "run.log_format = 'xml'" in result.output and "text, json" in result.output


def test_bad_override_exits_2_with_reason():
    result = runner.invoke(app, ["--set", "rings.wait=fast", "config", "show"])
    assert result.exit_code == 2
    assert "rings.wait = 'fast'" in result.output


def test_json_logs_carry_process_name_and_pid(capsys):
    import io

    buf = io.StringIO()
    setup_logging("feed", fmt="json", level="INFO", stream=buf)
    logging.getLogger("ctrader.test").info("book rebuilt", extra={"symbol": "BTCUSDT"})
    doc = json.loads(buf.getvalue().splitlines()[-1])
    assert doc["process"] == "feed" and doc["pid"] == os.getpid()
    assert doc["msg"] == "book rebuilt" and doc["symbol"] == "BTCUSDT"
    buf = io.StringIO()
    setup_logging("strategy", fmt="text", level="INFO", stream=buf)
    logging.getLogger("ctrader.test").warning("slow")
    assert f"strategy[{os.getpid()}]" in buf.getvalue()


def test_console_script_runs():
    exe = os.path.join(os.path.dirname(sys.executable), "ctrader")
    if not os.path.exists(exe):
        pytest.fail("the ctrader console script is not installed in this environment")
    out = subprocess.run([exe, "version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ctrader ")


def test_config_show_is_toml_that_config_check_accepts(tmp_path):
    import tomllib

    result = runner.invoke(app, ["--set", "sim.port=19501", "config", "show"])
    assert result.exit_code == 0
    doc = tomllib.loads(result.output)
    assert doc["sim"]["port"] == 19501 and doc["sim"]["accounts"][0]["name"] == "demo"
    shown = tmp_path / "shown.toml"
    shown.write_text(result.output)
    assert runner.invoke(app, ["config", "check", str(shown)]).exit_code == 0
