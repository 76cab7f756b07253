"""Who signs the account's requests: the executor's orders, the monitor's balance queries."""
from __future__ import annotations

from ctrader.config import Config


def live_signer(cfg: Config):
    """Credentials from the environment / secret files; on the simulator, its demo account."""
    from ctrader.config.secrets import load_credentials
    from ctrader.venue.signing import Signer

    creds = load_credentials(cfg.venue)
    if creds is not None:
        return Signer.from_credentials(creds)
    if cfg.venue.kind == "sim" and cfg.sim.accounts:
        acct = cfg.sim.accounts[0]           # loopback-only demo keys, not secrets
        return Signer(acct.api_key, secret=acct.api_secret)
    raise RuntimeError(f"live mode on {cfg.venue.kind} needs API credentials: set {cfg.venue.api_key_env} "
                       f"and {cfg.venue.api_secret_env}, or venue.secret_file / venue.private_key_file")
