"""How a Vedette process authenticates to NATS and checks the server: credentials and TLS.

Secrets never go on a command line (``ps`` shows it to every local user): a NATS credentials
file (``--nats-creds``: the user's JWT and nkey seed, as ``nsc`` writes it), or a user and
password (or a token) from the environment:

- ``VEDETTE_NATS_USER`` and ``VEDETTE_NATS_PASSWORD``;
- ``VEDETTE_NATS_TOKEN``.

TLS: ``--nats-tls-ca`` (the CA that signed the servers' certificates; default: the system's),
``--nats-tls-cert`` and ``--nats-tls-key`` (a client certificate, for servers that ``verify``
them). Giving any of them turns TLS on, also for ``nats://`` URLs; a ``tls://`` URL alone uses
the system's CAs. The server's name is always checked against its certificate.
"""

from __future__ import annotations

import importlib.util
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from vedette.errors import ConfigError

__all__ = ["ENV_PASSWORD", "ENV_TOKEN", "ENV_USER", "NatsAuth", "redact_url"]

ENV_USER = "VEDETTE_NATS_USER"
ENV_PASSWORD = "VEDETTE_NATS_PASSWORD"
ENV_TOKEN = "VEDETTE_NATS_TOKEN"


@dataclass(frozen=True, slots=True, kw_only=True)
class NatsAuth:
    """Credentials and TLS settings of one process's NATS connection (see the module doc)."""

    creds: Path | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        creds: Path | None = None,
        tls_ca: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
    ) -> NatsAuth:
        """The flags' files and the environment's secrets, checked (ConfigError says what)."""
        env = os.environ if environ is None else environ
        auth = cls(
            creds=creds,
            user=env.get(ENV_USER) or None,
            password=env.get(ENV_PASSWORD) or None,
            token=env.get(ENV_TOKEN) or None,
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
        )
        auth.check()
        return auth

    def check(self) -> None:
        """Refuse settings that cannot work, before any connection is tried."""
        if self.password and not self.user:
            raise ConfigError(f"${ENV_PASSWORD} is set but ${ENV_USER} is not")
        if self.user and not self.password:
            raise ConfigError(f"${ENV_USER} is set but ${ENV_PASSWORD} is not")
        given = sum(bool(x) for x in (self.creds, self.user, self.token))
        if given > 1:
            raise ConfigError(
                f"give one NATS credential: --nats-creds, ${ENV_USER}/${ENV_PASSWORD} "
                f"or ${ENV_TOKEN}"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("--nats-tls-cert and --nats-tls-key go together")
        for flag, path in (
            ("--nats-creds", self.creds),
            ("--nats-tls-ca", self.tls_ca),
            ("--nats-tls-cert", self.tls_cert),
            ("--nats-tls-key", self.tls_key),
        ):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{flag} {path}: no such file")
        # nats-py signs the server's nonce with nkeys, imported only when a creds file is used.
        if self.creds is not None and importlib.util.find_spec("nkeys") is None:
            raise ConfigError("--nats-creds needs the nkeys package: pip install 'nats-py[nkeys]'")

    @property
    def tls(self) -> bool:
        """True when a TLS flag was given."""
        return bool(self.tls_ca or self.tls_cert)

    def tls_context(self) -> ssl.SSLContext:
        """A client context: the given CA (or the system's), the client certificate if any."""
        try:
            context = ssl.create_default_context(cafile=str(self.tls_ca) if self.tls_ca else None)
            if self.tls_cert and self.tls_key:
                context.load_cert_chain(str(self.tls_cert), str(self.tls_key))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"NATS TLS files: {exc}") from exc
        return context

    def options(self) -> dict[str, Any]:
        """Keyword arguments of ``nats.connect`` for these settings."""
        out: dict[str, Any] = {}
        if self.creds is not None:
            out["user_credentials"] = str(self.creds)
        if self.user is not None:
            out["user"] = self.user
            out["password"] = self.password
        if self.token is not None:
            out["token"] = self.token
        if self.tls:
            out["tls"] = self.tls_context()
        return out


def redact_url(url: str) -> str:
    """``url`` (one or several, comma-separated) with any password replaced, for messages."""
    out = []
    for one in url.split(","):
        parts = urlsplit(one.strip())
        if parts.password is not None:
            host = parts.hostname or ""
            if parts.port is not None:
                host = f"{host}:{parts.port}"
            parts = parts._replace(netloc=f"{parts.username}:***@{host}")
        elif parts.username is not None and "@" in parts.netloc:
            # nats://TOKEN@host: the user part is the secret.
            parts = parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1])
        out.append(urlunsplit(parts))
    return ",".join(out)
