"""Configuration: layering, validation errors that say what is wrong, and secret handling."""
import os
import pathlib

import pytest

from ctrader.config import ConfigError, config_to_dict, data_dir, load_config
from ctrader.config.secrets import load_credentials, read_private_file
from ctrader.config.venues import endpoints


def test_default_config_works_with_no_edits():
    cfg = load_config(env={})
    assert cfg.venue.kind == "sim" and cfg.run.mode == "paper"
    assert cfg.store.url.startswith("chdb://")
    assert endpoints(cfg).rest == f"http://127.0.0.1:{cfg.sim.port}"


def test_layers_file_then_env_then_cli(tmp_path):
    user = tmp_path / "mine.toml"
    user.write_text('[run]\nlog_level = "DEBUG"\nmode = "live"\n')
    cfg = load_config(user, env={"CTRADER_RUN_LOG_LEVEL": "WARNING"}, overrides={"run.mode": "paper"})
    assert cfg.run.log_level == "WARNING"       # env beats file
    assert cfg.run.mode == "paper"              # --set beats env and file
    assert cfg.run.log_format == "text"         # untouched keys keep their defaults


def test_data_dir_alias_moves_the_data_directory(tmp_path):
    cfg = load_config(env={"CTRADER_DATA_DIR": str(tmp_path)})
    assert data_dir(cfg) == tmp_path.resolve()


@pytest.mark.parametrize("overrides, env, message", [
    ({"run.mode": "yolo"}, {}, "run.mode = 'yolo' (from --set run.mode): expected one of paper, live"),
    ({}, {"CTRADER_RINGS_MD_CAPACITY": "lots"}, "rings.md_capacity = 'lots' (from env CTRADER_RINGS_MD_CAPACITY): expected an integer"),
    ({"rings.md_capacity": "5000"}, {}, "expected a power of two"),
    ({"venue.recv_window_ms": "0"}, {}, "expected a value in [1, 60000]"),
    ({"run.bogus": "1"}, {}, "unknown key run.bogus"),
])
def test_bad_values_name_key_value_and_what_is_allowed(overrides, env, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=overrides, env=env)
    assert message in str(err.value)


def test_user_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[sim]\nport = "http"\n')
    with pytest.raises(ConfigError, match=r"sim.port = 'http' \(from .*bad.toml\): expected an integer"):
        load_config(bad, env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[run\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken, env={})


def test_secrets_come_from_env_and_never_show_in_repr_or_config():
    cfg = load_config(env={})
    creds = load_credentials(cfg.venue, env={"CTRADER_API_KEY": "k" * 64, "CTRADER_API_SECRET": "s" * 64})
    assert creds.api_key == "k" * 64 and creds.api_secret == "s" * 64
    assert "s" * 8 not in repr(creds) and "k" * 8 not in str(creds)
    assert "s" * 8 not in repr(config_to_dict(cfg))
    assert load_credentials(cfg.venue, env={}) is None


def test_secret_file_must_be_private(tmp_path):
    secret = tmp_path / "binance.keys"
    secret.write_text("api_key=abc123abc123\napi_secret=def456def456\n")
    os.chmod(secret, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_private_file(secret)
    os.chmod(secret, 0o600)
    cfg = load_config(overrides={"venue.secret_file": str(secret)}, env={})
    creds = load_credentials(cfg.venue, env={})
    assert (creds.api_key, creds.api_secret) == ("abc123abc123", "def456def456")


def test_key_without_secret_is_an_error():
    cfg = load_config(env={})
    with pytest.raises(ConfigError, match="neither CTRADER_API_SECRET"):
        load_credentials(cfg.venue, env={"CTRADER_API_KEY": "abc"})


def test_every_shipped_config_file_is_valid():
    for path in sorted(pathlib.Path(__file__).parent.parent.joinpath("config").glob("*.toml")):
        load_config(path, env={})


def test_shipped_configs_live_in_the_package_and_config_dir_links_to_them():
    from ctrader.config import shipped_configs
    from ctrader.config.loader import CONFIG_DIR

    shipped = shipped_configs()
    assert {"default", "binance-paper", "binance-testnet", "binance-live"} <= set(shipped)
    assert CONFIG_DIR.parent.name == "data" and CONFIG_DIR.parent.parent.name == "ctrader"
    checkout = pathlib.Path(__file__).parent.parent / "config"
    for name, path in shipped.items():        # one source of truth: config/ holds links, not copies
        link = checkout / path.name
        assert link.is_symlink() and link.resolve() == path.resolve(), name


def test_config_by_shipped_name_from_any_directory(tmp_path, monkeypatch):
    from ctrader.config import resolve_config_path

    monkeypatch.chdir(tmp_path)
    assert load_config("binance-testnet", env={}).venue.kind == "binance-testnet"
    assert load_config("binance-live.toml", env={}).run.mode == "live"
    assert load_config("config/binance-paper.toml", env={}).venue.kind == "binance"   # as the README writes it
    own = tmp_path / "binance-live.toml"                 # a file of that name here wins over the shipped one
    own.write_text('[run]\nmode = "paper"\n')
    assert resolve_config_path("binance-live.toml") == pathlib.Path("binance-live.toml")
    assert load_config("binance-live.toml", env={}).run.mode == "paper"
    with pytest.raises(ConfigError, match="shipped configurations: .*binance-paper"):
        load_config("nosuch", env={})
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "sub" / "binance-live.toml", env={})
