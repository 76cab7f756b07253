"""The pre-flight (``ctrader.runtime.preflight``): what ``start``, ``record`` and ``config check`` check
before any component starts (issue item 7). Each check one by one, then the commands: exit 2 and
one message naming every problem, with nothing started."""
from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ctrader.cli.main import app
from ctrader.cli.start_cmd import ALL
from ctrader.config import load_config
from ctrader.config.loader import DEFAULT_FILE
from ctrader.model.registry import PACKAGED_DIR
from ctrader.runtime.preflight import PreflightFailed, check, require

SECRET = "api_key=abcdefgh12345678\napi_secret=secretsecretsecret\n"


@pytest.fixture(autouse=True)
def no_keys_in_env(monkeypatch):
    for name in ("CTRADER_API_KEY", "CTRADER_API_SECRET"):
        monkeypatch.delenv(name, raising=False)


def config(tmp_path, **sets):
    overrides = {"run.data_dir": str(tmp_path / "data")}
    overrides.update({k.replace("__", "."): str(v) for k, v in sets.items()})
    return load_config(overrides=overrides, env={})


def problems(cfg, components=ALL) -> dict[str, str]:
    found = check(cfg, components)
    return {p.key: p.message for p in found}


def private(path, text=SECRET, mode=0o600):
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_the_default_configuration_passes(tmp_path):
    cfg = config(tmp_path)
    assert check(cfg, ALL) == []
    require(cfg, ALL)
    assert not (tmp_path / "data").exists()          # checking leaves nothing behind


# --- credentials (live mode) -----------------------------------------------------------------------

def test_live_mode_refuses_a_secret_file_readable_by_others(tmp_path):
    secret = private(tmp_path / "keys", mode=0o644)
    cfg = config(tmp_path, run__mode="live", venue__secret_file=secret)
    found = problems(cfg)
    assert list(found) == ["venue.secret_file"]
    assert "has mode 0644" in found["venue.secret_file"] and f"chmod 600 {secret}" in found["venue.secret_file"]
    os.chmod(secret, 0o600)
    assert problems(cfg) == {}
    # paper mode reads no credentials, and a session without the executor needs none
    assert problems(config(tmp_path, venue__secret_file=tmp_path / "none")) == {}
    assert problems(config(tmp_path, run__mode="live", venue__secret_file=tmp_path / "none"),
                    ["sim", "feed", "recorder"]) == {}


def test_live_mode_refuses_a_missing_secret_or_key_file(tmp_path):
    cfg = config(tmp_path, run__mode="live", venue__secret_file=tmp_path / "keys",
                 venue__private_key_file=tmp_path / "ed25519.pem")
    found = problems(cfg)
    assert f"secret file not found: {tmp_path / 'keys'}" == found["venue.secret_file"]
    assert f"secret file not found: {tmp_path / 'ed25519.pem'}" == found["venue.private_key_file"]


def test_live_mode_refuses_a_private_key_that_does_not_load(tmp_path):
    pem = private(tmp_path / "ed25519.pem", "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    keys = private(tmp_path / "keys", "api_key=abcdefgh12345678\n")
    cfg = config(tmp_path, run__mode="live", venue__secret_file=keys, venue__private_key_file=pem)
    assert "not a usable Ed25519 private key" in problems(cfg)["venue.private_key_file"]
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    private(pem, other.decode())
    assert "not an Ed25519 private key" in problems(cfg)["venue.private_key_file"]
    good = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    private(pem, good.decode())
    assert problems(cfg) == {}


def test_live_mode_on_binance_needs_credentials(tmp_path):
    cfg = config(tmp_path, run__mode="live", venue__kind="binance")
    found = problems(cfg)
    assert "live mode on binance needs API credentials: set CTRADER_API_KEY and CTRADER_API_SECRET" \
        in found["venue"]
    # on the simulator the demo account signs
    assert "venue" not in problems(config(tmp_path, run__mode="live"))
    keys_only = private(tmp_path / "keys", "api_key=abcdefgh12345678\n")
    found = problems(config(tmp_path, run__mode="live", venue__kind="binance", venue__secret_file=keys_only))
    assert "neither CTRADER_API_SECRET nor venue.private_key_file" in found["venue"]


# --- exchange info ---------------------------------------------------------------------------------

def test_a_missing_or_broken_market_exchange_info_file(tmp_path):
    found = problems(config(tmp_path, market__exchange_info_file=tmp_path / "info.json"))
    assert found["market.exchange_info_file"].startswith(f"{tmp_path / 'info.json'} does not exist; save the "
                                                         f"venue's GET /api/v3/exchangeInfo answer there")
    (tmp_path / "info.json").write_text("{\"symbols\": [")
    assert "is not JSON" in problems(config(tmp_path, market__exchange_info_file=tmp_path / "info.json"))[
        "market.exchange_info_file"]
    (tmp_path / "info.json").write_text("[]")
    assert "is not an exchangeInfo document" in problems(
        config(tmp_path, market__exchange_info_file=tmp_path / "info.json"))["market.exchange_info_file"]
    # a session that builds no universe (the simulator alone) does not need it
    assert problems(config(tmp_path, market__exchange_info_file=tmp_path / "info.json"), ["sim"]) == {}


def test_market_symbols_must_be_in_the_exchange_info(tmp_path):
    from ctrader.sim.universe import build_universe

    info = tmp_path / "info.json"
    info.write_text(json.dumps(build_universe(load_config(env={}).sim).exchange_info))
    assert problems(config(tmp_path, market__exchange_info_file=info)) == {}
    found = problems(config(tmp_path, market__exchange_info_file=info, market__symbols="BTCUSDT,NOPEUSDT"))
    assert found == {"market.symbols": "symbols not in exchangeInfo: NOPEUSDT (market.exchange_info_file)"}
    # without a file, against the simulator: its universe
    found = problems(config(tmp_path, market__start_assets="XYZ"))
    assert found["market.start_assets"].startswith("no triangle through XYZ")
    assert found["market.start_assets"].endswith("(the simulator's universe)")


def test_a_missing_sim_exchange_info_file_and_unknown_sim_symbols(tmp_path):
    found = problems(config(tmp_path, sim__exchange_info_file=tmp_path / "saved.json"))
    assert found["sim.exchange_info_file"].startswith(f"{tmp_path / 'saved.json'} does not exist")
    found = problems(config(tmp_path, sim__symbols="BTCUSDT,NOPE"))
    assert found == {"sim.symbols": "not in the universe: NOPE"}
    # another venue runs no simulator: its settings do not matter
    assert "sim.exchange_info_file" not in problems(
        config(tmp_path, venue__kind="binance", sim__exchange_info_file=tmp_path / "saved.json",
               market__exchange_info_file=PACKAGED_DIR / "none.json"))


def test_sim_accounts_are_checked(tmp_path):
    toml = tmp_path / "accounts.toml"
    toml.write_text('[[sim.accounts]]\nname = "a"\napi_key = "k"\napi_secret = "s"\ned25519_api_key = "e"\n'
                    'ed25519_public_key = "not a key"\nmaker_commission = 0.001\ntaker_commission = 0.001\n'
                    'balances = []\n')
    cfg = load_config(toml, overrides={"run.data_dir": str(tmp_path / "data")}, env={})
    found = problems(cfg)
    assert list(found) == ["sim.accounts[0].ed25519_public_key"]
    assert found["sim.accounts[0].ed25519_public_key"].startswith("account 'a': not an Ed25519 public key")
    toml.write_text(toml.read_text().replace('"not a key"', '"fgTy7zgZ/NbbdJ32BO2TT+LirkEUZZkPxSJpGVP4FqQ="')
                    .replace("balances = []", 'balances = ["USDT=0.000000001"]'))     # finer than Binance's 8
    cfg = load_config(toml, overrides={"run.data_dir": str(tmp_path / "data")}, env={})
    assert list(problems(cfg)) == ["sim.accounts"]


# --- model -----------------------------------------------------------------------------------------

def test_the_model_the_strategy_will_load_is_checked(tmp_path):
    reg = tmp_path / "data" / "models"
    shutil.copytree(PACKAGED_DIR / "default", reg / "m1")
    assert problems(config(tmp_path, model__name="m1")) == {}
    blob = (reg / "m1" / "model.onnx").read_bytes()
    (reg / "m1" / "model.onnx").write_bytes(blob[:100])
    found = problems(config(tmp_path, model__name="m1"))
    assert list(found) == ["model.name"]
    assert found["model.name"].startswith("'m1': ") and "onnxruntime cannot load it (InvalidProtobuf" \
        in found["model.name"] and "ctrader model promote NAME" in found["model.name"]
    # a model trained on other features
    shutil.copytree(PACKAGED_DIR / "default", reg / "m2")
    meta = json.loads((reg / "m2" / "metadata.json").read_text())
    meta["features"] = meta["features"][1:]
    (reg / "m2" / "metadata.json").write_text(json.dumps(meta))
    assert "does not match the strategy's features: missing ['edge_bps']" in problems(
        config(tmp_path, model__name="m2"))["model.name"]
    # not there; promoted nothing yet; none; a session without the strategy
    assert "model 'nope' not found" in problems(config(tmp_path, model__name="nope"))["model.name"]
    assert "model 'current' not found" in problems(config(tmp_path, model__name="current"))["model.name"]
    assert problems(config(tmp_path, model__name="none")) == {}
    assert problems(config(tmp_path, model__name="m1"), ["sim", "feed", "recorder"]) == {}


# --- directories: data, journal, spill -------------------------------------------------------------

def test_a_data_directory_that_cannot_be_made(tmp_path):
    (tmp_path / "file").write_text("")
    cfg = load_config(overrides={"run.data_dir": str(tmp_path / "file" / "data")}, env={})
    found = problems(cfg)
    assert found["run.data_dir"] == (f"{tmp_path / 'file' / 'data'}: {tmp_path / 'file'} is not a directory; "
                                     f"make it writable or choose another (CTRADER_DATA_DIR)")


def test_a_journal_directory_that_cannot_be_written(tmp_path):
    (tmp_path / "file").write_text("")
    found = problems(config(tmp_path, execution__journal_dir=tmp_path / "file" / "journal"))
    assert list(found) == ["execution.journal_dir"]
    assert "is not a directory" in found["execution.journal_dir"]
    assert problems(config(tmp_path, execution__journal_dir=tmp_path / "file" / "journal"), ["feed"]) == {}


def test_a_journal_on_a_full_disk(tmp_path, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    found = problems(config(tmp_path))
    assert list(found) == ["execution.journal_dir"]
    assert found["execution.journal_dir"] == (
        f"{tmp_path / 'data' / 'journal'}: no room to reserve a journal chunk (4 MiB): No space left on device; "
        f"free some space or point execution.journal_dir at a disk with room")
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".room-check")]


def test_a_journal_on_a_real_full_disk(tmp_path):
    """The same on a 1 MiB tmpfs, mounted in a user namespace (where the kernel allows one)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    exe = os.path.join(os.path.dirname(sys.executable), "ctrader")
    script = (f'mount -t tmpfs -o size=1m tmpfs "{disk}" || exit 99; '
              f'"{exe}" --set "execution.journal_dir={disk}/journal" config check "{DEFAULT_FILE}"')
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here")
    out = subprocess.run(["unshare", "-Urm", "sh", "-c", script], capture_output=True, text=True, timeout=120,
                         check=False, env=dict(os.environ, CTRADER_DATA_DIR=str(tmp_path / "data")))
    if out.returncode == 99 or "unshare:" in out.stderr:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {out.stderr.strip()}")
    assert out.returncode == 2, out.stderr
    assert f"execution.journal_dir: {disk}/journal: no room to reserve a journal chunk (4 MiB)" in out.stderr


def test_a_journal_another_executor_holds(tmp_path):
    from ctrader.execution.journal import Journal
    from ctrader.execution.process import journal_path

    cfg = config(tmp_path)
    journal = Journal(journal_path(cfg), sync=False)
    try:
        assert "is open in another executor" in problems(cfg)["execution.journal_dir"]
    finally:
        journal.close()
    assert problems(cfg) == {}


def test_a_spill_directory_that_cannot_be_made(tmp_path):
    (tmp_path / "file").write_text("")
    found = problems(config(tmp_path, recorder__spill_dir=tmp_path / "file" / "spill"))
    assert "recorder.spill_dir" in found and "is not a directory" in found["recorder.spill_dir"]


# --- store, redis, venue URLs ----------------------------------------------------------------------

@pytest.mark.parametrize("url", ["ftp://db:8123", "chdb://", "http://:8123", "http://db:port", "localhost:8123",
                                 "http://db:99999"])
def test_a_malformed_store_url(tmp_path, url):
    found = problems(config(tmp_path, store__url=url))
    assert list(found) == ["store.url"]


@pytest.mark.parametrize("url", ["chdb://{data_dir}/store", "http://127.0.0.1:8123", "https://u:p@db.example:8443"])
def test_a_well_formed_store_url(tmp_path, url):
    assert problems(config(tmp_path, store__url=url)) == {}


def test_store_database_redis_url_and_venue_urls(tmp_path):
    found = problems(config(tmp_path, store__database="my-db"))
    assert found == {"store.database": "'my-db': expected a plain name (letters, digits, _; not starting with a "
                                       "digit)"}
    assert "redis.url" in problems(config(tmp_path, redis__url="127.0.0.1:6379"))
    assert problems(config(tmp_path, redis__url="redis://127.0.0.1:6379/0")) == {}
    found = problems(config(tmp_path, venue__rest_url="127.0.0.1:80", venue__ws_api_url="http://127.0.0.1/ws"))
    assert set(found) == {"venue.rest_url", "venue.ws_api_url"}


def test_every_problem_at_once_in_one_message(tmp_path):
    cfg = config(tmp_path, market__exchange_info_file=tmp_path / "info.json", model__name="nope",
                 store__url="ftp://x")
    with pytest.raises(PreflightFailed) as err:
        require(cfg, ALL)
    text = str(err.value)
    assert text.startswith("3 problems found before starting anything:\n  - market.exchange_info_file: ")
    assert "\n  - model.name: 'nope'" in text and "\n  - store.url: 'ftp://x'" in text


# --- the commands: exit 2, one message, nothing started --------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def invoke(tmp_path, *args, sets=()):
    argv = ["--set", f"sim.port={_free_port()}"]
    for item in sets:
        argv += ["--set", item]
    return CliRunner().invoke(app, argv + list(args), env={"CTRADER_DATA_DIR": str(tmp_path / "data")})


def nothing_started(tmp_path) -> bool:
    return not (tmp_path / "data" / "runs").exists()


def test_config_check_runs_the_preflight(tmp_path):
    secret = private(tmp_path / "keys", mode=0o644)
    mine = tmp_path / "live.toml"
    mine.write_text(f'[run]\nmode = "live"\n\n[venue]\nsecret_file = "{secret}"\n')
    result = invoke(tmp_path, "config", "check", str(mine))
    assert result.exit_code == 2
    assert f"invalid: {mine}: 1 problem found before starting anything:\n  - venue.secret_file: secret file " \
           f"{secret} has mode 0644" in result.output
    os.chmod(secret, 0o600)
    result = invoke(tmp_path, "config", "check", str(mine))
    assert result.exit_code == 0 and result.stdout.strip() == f"{mine}: ok"
    # --for record: the model and the journal do not matter to a recording
    (tmp_path / "none.toml").write_text('[model]\nname = "nope"\n')
    assert invoke(tmp_path, "config", "check", str(tmp_path / "none.toml")).exit_code == 2
    assert invoke(tmp_path, "config", "check", "--for", "record", str(tmp_path / "none.toml")).exit_code == 0
    assert invoke(tmp_path, "config", "check", "--for", "replay", str(mine)).exit_code == 2


def test_start_with_a_bad_secret_file_stops_before_starting_anything(tmp_path):
    secret = private(tmp_path / "keys", mode=0o644)
    result = invoke(tmp_path, "start", "--duration", "5", sets=["run.mode=live", f"venue.secret_file={secret}"])
    assert result.exit_code == 2
    assert "cannot start: 1 problem found before starting anything:\n  - venue.secret_file: " in result.output
    assert nothing_started(tmp_path)


def test_start_with_a_missing_exchange_info_file_and_a_corrupt_model(tmp_path):
    reg = tmp_path / "data" / "models"
    shutil.copytree(PACKAGED_DIR / "default", reg / "m1")
    (reg / "m1" / "model.onnx").write_bytes(b"\x08\x07broken")
    result = invoke(tmp_path, "start", "--processes", "--duration", "5",
                    sets=[f"market.exchange_info_file={tmp_path / 'info.json'}", "model.name=m1"])
    assert result.exit_code == 2
    assert "cannot start: 2 problems found" in result.output
    assert "- market.exchange_info_file: " in result.output and "- model.name: 'm1': " in result.output
    assert nothing_started(tmp_path)


def test_start_with_the_journal_on_a_full_disk(tmp_path, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    result = invoke(tmp_path, "start", "--duration", "5")
    assert result.exit_code == 2 and "- execution.journal_dir: " in result.output and "no room" in result.output
    assert nothing_started(tmp_path)


def test_record_with_a_missing_sim_exchange_info_file_ends_at_once(tmp_path):
    result = invoke(tmp_path, "record", "--duration", "5", sets=[f"sim.exchange_info_file={tmp_path / 'x.json'}"])
    assert result.exit_code == 2
    assert f"- sim.exchange_info_file: {tmp_path / 'x.json'} does not exist" in result.output
    assert "Traceback" not in result.output and nothing_started(tmp_path)
