"""Throwaway DKIM keys for tests: a key file as ``load_signer`` wants it, Settings that sign
with it, and a DNS lookup that publishes only its public key (for ``dkim.verify``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from distributor.core.config import Settings, load_settings
from distributor.mail.dkim import Signer
from tests.helpers import TEST_SECRET_KEY


def write_key(path: Path, fmt: serialization.PrivateFormat) -> rsa.RSAPrivateKey:
    """A new RSA key written to ``path``, readable by its owner only (as load_signer wants)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
    )
    path.chmod(0o600)
    return key


def dkim_settings(tmp_path: Path, key_file: Path | None, **overrides: object) -> Settings:
    """Settings under ``tmp_path`` that sign with ``key_file`` as selector ``press2026`` of
    ``example.org`` (the sender's domain), ``overrides`` applied last."""
    values: dict[str, object] = {
        "data_dir": tmp_path / "var",
        "site_url": "https://news.example.org",
        "secret_key": TEST_SECRET_KEY,
        "sender": "Agence de presse <press@example.org>",
        "dkim_key_file": key_file,
        "dkim_selector": "press2026",
        "dkim_domain": "example.org",
    }
    values.update(overrides)
    return load_settings(**values)


def dns_for(signer: Signer) -> Callable[..., bytes | None]:
    """A DNS lookup that knows only the signer's public key record."""

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        if name.decode().rstrip(".") == signer.dns_name:
            return signer.dns_record.encode()
        return None

    return lookup
