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
    with pytest.raises(ConfigError, match=r"sim.port = 'http' \(from .*bad.toml:2\): expected an integer"):
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


# --- where a bad key was written: file and line (issue item 13) ---------------------------------

def test_an_unknown_section_names_its_file_and_line(tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text('# my settings\n[run]\nlog_level = "DEBUG"\n\n[riskk]\nmax_position = 10\n')
    with pytest.raises(ConfigError) as err:
        load_config(mine, env={})
    assert f"unknown section riskk (from {mine}:5): did you mean risk?" in str(err.value)
    assert "known sections: alerts, compute, execution, feed" in str(err.value)


def test_an_unknown_key_and_a_bad_value_name_their_lines(tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text('[risk]\nmax_position = 10\nmax_postion = 5\n\n[sim.market]\nspeed = 2\n')
    with pytest.raises(ConfigError, match=rf"unknown key risk.max_postion \(from {mine}:3\): did you mean "
                                          rf"risk.max_position\?"):
        load_config(mine, env={})
    mine.write_text('[risk]\nmax_position = 10\n\n[sim.market]\nspeed = -1\n')
    with pytest.raises(ConfigError, match=rf"sim.market.speed = -1 \(from {mine}:5\)"):
        load_config(mine, env={})


def test_keys_of_arrays_of_tables_and_list_items_name_their_lines(tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text('[strategy]\nmax_start = ["USDT=1000",\n  "BTC=x"]\n\n[[sim.accounts]]\nname = "a"\n'
                    'api_key = ""\napi_secret = ""\ned25519_api_key = ""\ned25519_public_key = ""\n'
                    'maker_commission = 0.001\ntaker_commission = 0.5\nbalances = []\n')
    with pytest.raises(ConfigError, match=rf"sim.accounts\[0\].taker_commission = 0.5 \(from {mine}:12\)"):
        load_config(mine, env={})
    mine.write_text('[strategy]\nmax_start = ["USDT=1000",\n  "BTC=x"]\n')
    with pytest.raises(ConfigError, match=rf"strategy.max_start\[1\] = 'BTC=x' \(from {mine}:2\)"):
        load_config(mine, env={})


def test_an_unknown_section_from_the_command_line_names_the_option():
    with pytest.raises(ConfigError, match=r"unknown section riskk \(from --set riskk.max_position\)"):
        load_config(overrides={"riskk.max_position": "1"}, env={})


def test_key_lines_places_every_key_of_the_default_file():
    from ctrader.config.loader import DEFAULT_FILE
    from ctrader.config.toml_lines import key_lines

    text = DEFAULT_FILE.read_text()
    lines = text.splitlines()
    found = key_lines(text)
    assert found["sim.accounts[0]"] < found["sim.accounts[0].balances"]
    for dotted in ("run", "run.mode", "sim.market.speed", "risk.daily_loss_limit", "sim.accounts[0].name"):
        assert dotted.rsplit(".", 1)[-1].split("[")[0] in lines[found[dotted] - 1]
    # a multi-line string or array does not lose the keys after it
    doc = 'a = """\nb = 1\n"""\nc = [\n  "d = 2",\n]\ne = 3\n'
    assert key_lines(doc) == {"a": 1, "c": 4, "e": 7}


# --- non-finite numbers (issue item 11) ------------------------------------------------------------

def _float_keys():
    """Every float key of the schema, dotted (what env and --set can reach)."""
    import typing

    from ctrader.config.loader import _scalar_keys
    from ctrader.config.schema import Config

    for dotted in _scalar_keys(Config):
        node = Config
        for part in dotted.split("."):
            node = typing.get_type_hints(node)[part]
        if node is float:
            yield dotted


def test_every_float_key_refuses_nan_and_infinity():
    keys = list(_float_keys())
    assert "risk.daily_loss_limit" in keys and "sim.market.speed" in keys and len(keys) > 30
    for key in keys:
        for bad in ("nan", "inf", "-inf", "NaN"):
            with pytest.raises(ConfigError, match=rf"{key} = '{bad}' \(from --set {key}\): expected a finite number"):
                load_config(overrides={key: bad}, env={})


def test_nan_in_a_file_or_the_environment_is_refused(tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text("[risk]\nmax_position = 10\ndaily_loss_limit = nan\n")
    with pytest.raises(ConfigError, match=rf"risk.daily_loss_limit = nan \(from {mine}:3\): expected a finite"):
        load_config(mine, env={})
    mine.write_text("[risk]\nmax_order_notional = inf\n")
    with pytest.raises(ConfigError, match=rf"risk.max_order_notional = inf \(from {mine}:2\): expected a finite"):
        load_config(mine, env={})
    with pytest.raises(ConfigError, match=r"risk.max_position = 'nan' \(from env CTRADER_RISK_MAX_POSITION\)"):
        load_config(env={"CTRADER_RISK_MAX_POSITION": "nan"})
    with pytest.raises(ConfigError, match=r"sim.accounts\[0\].maker_commission = nan"):
        mine.write_text('[[sim.accounts]]\nname = "a"\napi_key = ""\napi_secret = ""\ned25519_api_key = ""\n'
                        'ed25519_public_key = ""\nmaker_commission = nan\ntaker_commission = 0.001\nbalances = []\n')
        load_config(mine, env={})
    mine.write_text('[[sim.accounts]]\nname = "a"\napi_key = ""\napi_secret = ""\ned25519_api_key = ""\n'
                    'ed25519_public_key = ""\nmaker_commission = 0\ntaker_commission = 0\nbalances = ["USDT=1e3"]\n')
    with pytest.raises(ConfigError, match=rf"sim.accounts\[0\].balances\[0\] = 'USDT=1e3' \(from {mine}:9\): "
                                          rf"expected ASSET=AMOUNT with a non-negative decimal amount"):
        load_config(mine, env={})


@pytest.mark.parametrize("key, value, kind", [
    ("strategy.max_start", "USDT=nan", "non-negative"),
    ("strategy.max_start", "USDT=1000,BTC=inf", "non-negative"),
    ("strategy.max_start", "USDT=-5", "non-negative"),
    ("strategy.max_start", "USDT", "non-negative"),
    ("sim.market.asset_prices", "BTC=0", "positive"),
    ("sim.market.asset_prices", "BTC=1e999", "positive"),
    ("sim.market.asset_prices", "BTC=-inf", "positive"),
])
def test_asset_amount_lists_refuse_non_finite_and_negative_amounts(key, value, kind):
    with pytest.raises(ConfigError, match=rf"{key}\[\d\] = '.*' \(from --set {key}\): expected ASSET=AMOUNT with a "
                                          rf"{kind} decimal amount"):
        load_config(overrides={key: value}, env={})
    assert load_config(overrides={key: "USDT=5,BTC=0.5"}, env={})


def test_config_check_refuses_nan_with_exit_2(tmp_path):
    from typer.testing import CliRunner

    from ctrader.cli.main import app

    mine = tmp_path / "mine.toml"
    mine.write_text("[risk]\ndaily_loss_limit = nan\n")
    result = CliRunner().invoke(app, ["config", "check", str(mine)], env={"CTRADER_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2
    assert f"risk.daily_loss_limit = nan (from {mine}:2): expected a finite number" in result.output
