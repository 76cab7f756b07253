"""Optional extras: a command that needs one that is missing says which to install."""
from __future__ import annotations

import sys

import pytest

from ctrader.core.extras import EXIT_CODE, EXTRAS, MissingExtra, require


def test_require_passes_when_installed():
    require("train")                       # the test environment has every extra the tests need
    require("report", "plotly")


def test_require_names_the_extra_of_a_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "skl2onnx", None)      # import skl2onnx now raises ImportError
    with pytest.raises(MissingExtra) as info:
        require("train")
    assert info.value.extra == "train" and info.value.distribution == "skl2onnx"
    assert "pip install 'ctrader[train]'" in str(info.value)
    assert isinstance(info.value, ImportError)


def test_unknown_extra_is_a_programming_error():
    with pytest.raises(ValueError, match="known: train, report, peers"):
        require("gpu")


def test_extras_match_pyproject():
    import pathlib
    import tomllib

    doc = tomllib.loads((pathlib.Path(__file__).parent.parent / "pyproject.toml").read_text())
    declared = doc["project"]["optional-dependencies"]
    for extra, packages in EXTRAS.items():
        names = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in declared[extra]}
        assert {dist.lower() for _, dist in packages} <= names, extra


@pytest.mark.parametrize("argv, extra", [
    (["model", "train", "--from-sim"], "train"),
    (["model", "train-history", "--name", "m"], "train"),
    (["replay", "--report", "x.html"], "report"),
])
def test_cli_says_which_extra_to_install(monkeypatch, capsys, tmp_path, argv, extra):
    from ctrader.cli import main

    monkeypatch.setenv("CTRADER_DATA_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "plotly", None)
    monkeypatch.setattr(sys, "argv", ["ctrader", *argv])
    with pytest.raises(SystemExit) as info:
        main.run()
    assert info.value.code == EXIT_CODE
    err = capsys.readouterr().err
    assert f"pip install 'ctrader[{extra}]'" in err and "Traceback" not in err
