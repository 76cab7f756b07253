"""Request signing as Binance specifies it, for both ends of the wire.

REST (``rest-api.md`` -> SIGNED endpoints): the signature payload is the percent-encoded query
string concatenated *without separator* with the percent-encoded body, exactly as sent; HMAC
signatures are hex, Ed25519 signatures are base64 and are themselves percent-encoded in the
request. Since 2026-01-15 a signature computed before percent-encoding is rejected (-1022), which
the verifier here reproduces by checking the raw bytes as received.

WebSocket API (``web-socket-api.md`` -> SIGNED request example): every param except
``signature``, sorted by name, ``k=v`` joined with ``&``, *no* percent-encoding.

The engine signs with ``Signer``; the simulator verifies with ``verify_signature``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any, Iterable, Mapping
from urllib.parse import quote, unquote_plus, urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HMAC_SHA256 = "HMAC_SHA256"
ED25519 = "ED25519"


# --- payloads ---------------------------------------------------------------------------------

def param_text(value: Any) -> str:
    """How a parameter value is written in a payload: JSON booleans are ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def rest_query(params: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
    """Percent-encoded ``k=v&...`` in the given order (what is both sent and signed)."""
    items = params.items() if isinstance(params, Mapping) else params
    return urlencode([(k, param_text(v)) for k, v in items], encoding="utf-8")


def ws_api_payload(params: Mapping[str, Any]) -> str:
    """The WS API signature payload: params except ``signature``, sorted, not percent-encoded."""
    return "&".join(f"{k}={param_text(params[k])}" for k in sorted(params) if k != "signature")


def split_rest_signature(raw_query: str, raw_body: str) -> tuple[str, str | None]:
    """(payload, signature as sent but percent-decoded) from a REST request's raw query and body.

    The ``signature=...`` pair is removed from whichever part carries it; the rest of each part is
    kept byte for byte, and the two parts are concatenated without a separator, as Binance does.
    """
    signature = None
    parts = []
    for raw in (raw_query, raw_body):
        kept = []
        for pair in raw.split("&") if raw else ():
            if pair.startswith("signature="):
                signature = unquote_plus(pair[len("signature="):])
            else:
                kept.append(pair)
        parts.append("&".join(kept))
    return "".join(parts), signature


# --- keys -------------------------------------------------------------------------------------

def load_ed25519_public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM text, or base64 of the raw 32 bytes or of the DER form."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
    else:
        raw = base64.b64decode(text)
        key = (Ed25519PublicKey.from_public_bytes(raw) if len(raw) == 32
               else serialization.load_der_public_key(raw))
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def load_ed25519_private_key(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


# The simulator's demo account's Ed25519 key is derived from this published seed: a documented,
# loopback-only demo credential (see config/default.toml), never a secret. Here, not in the
# simulator, because both ends use it: the simulator to verify, the engine's demo set-up to sign.
DEMO_ED25519_SEED = b"ctrader-sim-demo-ed25519"


def demo_ed25519_private_key() -> Ed25519PrivateKey:
    """The private half of the default demo account's Ed25519 key (loopback demos only)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(DEMO_ED25519_SEED).digest())


# --- signing (client) -------------------------------------------------------------------------

def hmac_sha256_hex(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def ed25519_base64(key: Ed25519PrivateKey, payload: str) -> str:
    return base64.b64encode(key.sign(payload.encode())).decode()


class Signer:
    """Signs requests with one API key: HMAC-SHA256 (secret) or Ed25519 (private key PEM)."""

    def __init__(self, api_key: str, secret: str = "", private_key_pem: bytes = b"") -> None:
        if not secret and not private_key_pem:
            raise ValueError("a Signer needs an HMAC secret or an Ed25519 private key")
        self.api_key = api_key
        self._secret = secret
        self._private = load_ed25519_private_key(private_key_pem) if private_key_pem else None
        self.kind = ED25519 if self._private is not None else HMAC_SHA256

    def __repr__(self) -> str:
        return f"Signer(kind={self.kind}, api_key=***{self.api_key[-4:]})"

    @classmethod
    def from_credentials(cls, creds: Any) -> "Signer":
        """From ``ctrader.config.secrets.Credentials``."""
        return cls(creds.api_key, creds.api_secret, creds.private_key_pem)

    def sign(self, payload: str) -> str:
        if self._private is not None:
            return ed25519_base64(self._private, payload)
        return hmac_sha256_hex(self._secret, payload)

    def signed_query(self, params: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
        """REST: the query/body to send, ending in ``&signature=...`` (percent-encoded)."""
        payload = rest_query(params)
        return f"{payload}&signature={quote(self.sign(payload), safe='')}"

    def signed_ws_params(self, params: Mapping[str, Any], include_api_key: bool = True) -> dict:
        """WS API: ``params`` plus ``apiKey`` (unless the session is logged on) and ``signature``."""
        out = dict(params)
        if include_api_key:
            out["apiKey"] = self.api_key
        out["signature"] = self.sign(ws_api_payload(out))
        return out


# --- verification (venue side) ----------------------------------------------------------------

def verify_hmac(secret: str, payload: bytes, signature: str) -> bool:
    expected = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    # HMAC hex signatures are case-insensitive (rest-api.md -> Signature Case Sensitivity).
    return hmac.compare_digest(expected, signature.lower())


def verify_ed25519(key: Ed25519PublicKey, payload: bytes, signature: str) -> bool:
    # Ed25519 base64 signatures are case-sensitive: no normalisation.
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, payload)
        return True
    except (InvalidSignature, binascii.Error, ValueError):
        return False
