"""NATS decentralised auth for tests: an operator, an account with JetStream and a user, as JWTs
signed with nkeys, a user credentials file and the server configuration that trusts them.

This is what ``nsc`` writes (nats-io/jwt v2 claims), made here without it: the server runs in
operator mode with a memory resolver preloaded with the account, and a client proves itself
with the user's JWT and a signature of the server's nonce (``--nats-creds``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nkeys


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_key(prefix: int) -> nkeys.KeyPair:
    """A fresh key pair of one kind (operator, account, user)."""
    return nkeys.from_seed(bytearray(nkeys.encode_seed(os.urandom(32), prefix)))


def public(key: nkeys.KeyPair) -> str:
    return str(key.public_key.decode())


def encode(claims: dict[str, Any], signer: nkeys.KeyPair) -> str:
    """A JWT of ``claims`` issued and signed by ``signer`` (alg ed25519-nkey)."""
    body = {"iat": int(time.time()), "iss": public(signer), **claims}
    body["jti"] = (
        base64.b32encode(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest())
        .decode()
        .rstrip("=")
    )
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    payload = _b64(json.dumps(body).encode())
    signature = signer.sign(f"{header}.{payload}".encode())
    return f"{header}.{payload}.{_b64(signature)}"


UNLIMITED_ACCOUNT = {
    "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True,
    "conn": -1, "leaf": -1, "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
}  # fmt: skip


@dataclass(frozen=True)
class Trust:
    """An operator and one account with JetStream, and how a server trusts them."""

    operator: nkeys.KeyPair
    account: nkeys.KeyPair
    system: nkeys.KeyPair
    """The server's own account (JetStream needs one in operator mode)."""
    operator_jwt: str
    account_jwt: str
    system_jwt: str

    @classmethod
    def make(cls) -> Trust:
        operator = new_key(nkeys.PREFIX_BYTE_OPERATOR)
        account = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
        system = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
        operator_jwt = encode(
            {
                "name": "test-operator",
                "sub": public(operator),
                "nats": {"type": "operator", "system_account": public(system), "version": 2},
            },
            operator,
        )
        return cls(
            operator,
            account,
            system,
            operator_jwt,
            _account_jwt("vedette", account, operator, UNLIMITED_ACCOUNT),
            _account_jwt("SYS", system, operator, {"subs": -1, "conn": -1, "data": -1}),
        )

    def server_config(self) -> str:
        """The lines a nats-server configuration needs to trust this operator and account."""
        return (
            f'operator: "{self.operator_jwt}"\n'
            f"system_account: {public(self.system)}\n"
            "resolver: MEMORY\n"
            "resolver_preload: {\n"
            f'  {public(self.account)}: "{self.account_jwt}"\n'
            f'  {public(self.system)}: "{self.system_jwt}"\n'
            "}\n"
        )

    def user_creds(self, path: Path, name: str = "vedette") -> Path:
        """A credentials file of a new user of the account, as ``nsc generate creds`` writes."""
        user = new_key(nkeys.PREFIX_BYTE_USER)
        return write_creds(path, user, self.account, name)


def _account_jwt(
    name: str, account: nkeys.KeyPair, operator: nkeys.KeyPair, limits: dict[str, Any]
) -> str:
    return encode(
        {
            "name": name,
            "sub": public(account),
            "nats": {
                "limits": limits,
                "default_permissions": {"pub": {}, "sub": {}},
                "type": "account",
                "version": 2,
            },
        },
        operator,
    )


def write_creds(path: Path, user: nkeys.KeyPair, account: nkeys.KeyPair, name: str) -> Path:
    """The user's JWT (issued by ``account``) and seed in the ``.creds`` layout."""
    jwt = encode(
        {
            "name": name,
            "sub": public(user),
            "nats": {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
                     "type": "user", "version": 2},
        },
        account,
    )  # fmt: skip
    path.write_text(
        "-----BEGIN NATS USER JWT-----\n"
        f"{jwt}\n"
        "------END NATS USER JWT------\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{user.seed.decode()}\n"
        "------END USER NKEY SEED------\n"
    )
    path.chmod(0o600)
    return path
