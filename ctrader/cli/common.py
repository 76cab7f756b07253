"""State shared by every CLI command: the loaded config and logging set-up."""
from __future__ import annotations

from dataclasses import dataclass

import typer

from ctrader.config import Config, ConfigError, load_config
from ctrader.core.logs import setup_logging


@dataclass
class CliState:
    config_path: str | None = None
    overrides: dict[str, str] | None = None
    log_format: str | None = None
    log_level: str | None = None
    _config: Config | None = None

    def config(self) -> Config:
        """Load and validate the configuration once; a bad value ends the command with exit 2."""
        if self._config is None:
            try:
                self._config = load_config(self.config_path, overrides=self.overrides)
            except ConfigError as exc:
                typer.secho(f"config error: {exc}", fg=typer.colors.RED, err=True)
                raise typer.Exit(2) from None
        return self._config

    def setup_logging(self, process_name: str) -> Config:
        cfg = self.config()
        setup_logging(process_name, fmt=self.log_format or cfg.run.log_format,
                      level=self.log_level or cfg.run.log_level)
        return cfg


def state(ctx: typer.Context) -> CliState:
    return ctx.find_root().obj


def run_session_or_exit(cfg: Config, names: list[str], **kw) -> dict:
    """``run_session``; instead of a traceback, the reason in red and exit code 2 when the
    pre-flight finds something wrong (``ctrader.runtime.preflight``: nothing has started), or 1
    when another session holds what it needs (its data directory, the simulator's or the
    monitor's port), the monitor cannot start as configured, or a component could not start."""
    from ctrader.monitor.auth import MonitorSetupError
    from ctrader.runtime.preflight import PreflightFailed
    from ctrader.runtime.session import SessionInUse, run_session
    from ctrader.runtime.supervisor import StartFailed

    try:
        return run_session(cfg, names, **kw)
    except PreflightFailed as exc:
        typer.secho(f"cannot start: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    except (SessionInUse, StartFailed, MonitorSetupError) as exc:
        typer.secho(f"cannot start: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
