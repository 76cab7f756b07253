"""Who signs the account's requests: the executor's orders, the monitor's balance queries."""
from __future__ import annotations

from ctrader.config import Config


def live_signer(cfg: Config):
    """Credentials from the environment / secret files; on the simulator, its demo account,
    with its Ed25519 key when it is the published demo key (the recommended set-up: the session
    logs on once and orders carry no signature), its HMAC key otherwise."""
    from ctrader.config.secrets import load_credentials
    from ctrader.venue.signing import Signer, demo_ed25519_private_key, load_ed25519_public_key, private_key_pem

    creds = load_credentials(cfg.venue)
    if creds is not None:
        return Signer.from_credentials(creds)
    if cfg.venue.kind == "sim" and cfg.sim.accounts:
        acct = cfg.sim.accounts[0]           # loopback-only demo keys, not secrets
        demo = demo_ed25519_private_key()
        if acct.ed25519_api_key and acct.ed25519_public_key and \
                load_ed25519_public_key(acct.ed25519_public_key) == demo.public_key():
            return Signer(acct.ed25519_api_key, private_key_pem=private_key_pem(demo))
        return Signer(acct.api_key, secret=acct.api_secret)
    raise RuntimeError(f"live mode on {cfg.venue.kind} needs API credentials: set {cfg.venue.api_key_env} "
                       f"and {cfg.venue.api_secret_env}, or venue.secret_file / venue.private_key_file")
