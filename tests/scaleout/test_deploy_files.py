"""The deployment files (deploy/) hold together: the compose file parses and names every part,
no secret is written in any of them, the commands they run name real ``vedette serve`` flags,
and the NATS cluster configuration passes ``nats-server -t``. Every role (api, worker,
scheduler, notifier) has a systemd unit and a compose service of two or more replicas.

These files are a sketch of a production set-up; what runs in the other scale-out tests is one
NATS server and one PostgreSQL (docs/deploy.md says which is which).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from natsserver import _binary
from vedette.cli.cmd_serve import ROLE_NEEDS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
UNITS = [
    DEPLOY / "systemd" / name
    for name in (
        "vedette-api.service",
        "vedette-worker@.service",
        "vedette-scheduler@.service",
        "vedette-notifier@.service",
    )
]
ROLES = ("api", "worker", "scheduler", "notifier")
SERVICES = {"nats1", "nats2", "nats3", "pg-primary", "pg-standby", *ROLES, "proxy"}
# A key that names a secret; its value must point at a file or a variable, never be one.
SECRET_KEY = re.compile(r"pass(word)?|secret|token|(^|_)key$", re.I)


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def serve_flags() -> tuple[set[str], set[str]]:
    """The options ``vedette serve --help`` lists, and the choices of ``--role``."""
    done = subprocess.run(
        [sys.executable, "-m", "vedette", "serve", "--help"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", done.stdout))
    roles = re.search(r"--role \{([a-z,]+)\}", done.stdout)
    assert roles, done.stdout
    return flags, set(roles.group(1).split(","))


def check_serve_command(argv: list[str], flags: set[str], roles: set[str]) -> str:
    """``vedette serve ...``: every flag is one serve knows; the role is one of its choices."""
    at = next(i for i, a in enumerate(argv) if Path(a).name == "vedette")
    assert argv[at + 1] == "serve", argv
    args = argv[at + 2 :]
    used = [a.split("=", 1)[0] for a in args if a.startswith("--")]
    unknown = [a for a in used if a not in flags]
    assert not unknown, f"not flags of vedette serve: {unknown}"
    role = args[args.index("--role") + 1]
    assert role in roles
    # What `vedette serve` refuses to start the role without, and the shared partition count.
    needed = ["--home", *ROLE_NEEDS[role]]
    if "--nats" in ROLE_NEEDS[role]:
        needed.append("--partitions")
    for flag in needed:
        assert flag in used, f"{flag} missing from {argv}"
    assert not any(re.search(r"://[^/\s]*@", a) for a in args), argv
    if "--nats" in ROLE_NEEDS[role]:
        # NATS: three replicas on the 3-node cluster, TLS with the CA and a client certificate;
        # its credentials come from the environment (VEDETTE_NATS_*), never from the arguments.
        assert args[args.index("--replicas") + 1] == "3", argv
        for flag in ("--nats-tls-ca", "--nats-tls-cert", "--nats-tls-key"):
            assert flag in used, f"{flag} missing from {argv}"
    return role


def exec_start(unit: Path) -> list[str]:
    """The ExecStart line of a systemd unit, continuation lines joined, split as systemd does."""
    text = unit.read_text().replace("\\\n", " ")
    lines = [x for x in text.splitlines() if x.startswith("ExecStart=")]
    assert len(lines) == 1, unit
    return shlex.split(lines[0].removeprefix("ExecStart="))


def test_compose_parses_with_every_service() -> None:
    doc = compose()
    services = doc["services"]
    assert set(services) == SERVICES
    # Every NATS server keeps its own store; the workers scale; the event store is shared.
    for name in ("nats1", "nats2", "nats3"):
        assert any(str(v).endswith(":/data") for v in services[name]["volumes"]), name
        assert services[name]["environment"]["NATS_SERVER_NAME"] == name
    # No role is a single point of failure: two or more of each.
    for name in ROLES:
        assert services[name]["deploy"]["replicas"] >= 2, name
    for name in ("api", "worker", "scheduler"):
        assert "events:/srv/vedette/events" in services[name]["volumes"]
    assert "events" in doc["volumes"]


def test_compose_commands_name_real_serve_flags() -> None:
    flags, roles = serve_flags()
    services = compose()["services"]
    seen = set()
    for name in ROLES:
        command = services[name]["command"]
        # sh -c '...': the inner command, with $$ (compose's escape) as the shell's $.
        inner = shlex.split(command)[2].replace("$$", "$")
        seen.add(check_serve_command(shlex.split(inner), flags, roles))
    assert seen == set(ROLES) <= roles
    # A worker holding one partition (the Hyperscan scratch limit): one worker per partition,
    # or the partitions nobody may take keep their events waiting.
    worker = shlex.split(shlex.split(services["worker"]["command"])[2])
    if "--max-partitions" in worker:
        partitions = int(worker[worker.index("--partitions") + 1])
        most = int(worker[worker.index("--max-partitions") + 1])
        assert services["worker"]["deploy"]["replicas"] * most >= partitions


def test_systemd_units_name_real_serve_flags() -> None:
    flags, roles = serve_flags()
    seen = {check_serve_command(exec_start(unit), flags, roles) for unit in UNITS}
    assert seen == set(ROLES)
    for unit in UNITS:
        text = unit.read_text()
        # Secrets come from the environment file and the password file, not the unit.
        assert "EnvironmentFile=/etc/vedette/vedette.env" in text
        assert "PGPASSFILE=" in text
    # One home per instance, so instances do not share a rule cache or backups.
    for unit, role in zip(UNITS[1:], ROLES[1:], strict=True):
        assert f"--home /var/lib/vedette/{role}-%i" in unit.read_text()


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [kv for k, v in node.items() for kv in _walk(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [kv for i, v in enumerate(node) for kv in _walk(v, f"{path}[{i}]")]
    return [(path, node)]


def test_compose_writes_no_secret() -> None:
    doc = compose()
    for path, value in _walk(doc):
        leaf = path.rsplit(".", 1)[-1]
        # (A list item is a name, as in a service's secrets: [pgpass], not a key and value.)
        if SECRET_KEY.search(leaf) and not leaf.endswith("]") and isinstance(value, str):
            # A *_FILE variable naming a mounted secret, or a reference, never a value.
            assert leaf.endswith("_FILE") or value.startswith(("/run/secrets/", "$")), path
        if isinstance(value, str):
            assert not re.search(r"://[^/@\s:]+:[^/@\s$]+@", value), f"credentials in {path}"
    # Secret files and environment files live under secrets/ or tls/, which git ignores.
    for name, secret in doc["secrets"].items():
        assert secret["file"].startswith(("./secrets/", "./tls/")), name
    for name, service in doc["services"].items():
        for env_file in service.get("env_file", []):
            assert env_file.startswith("./secrets/"), name
        for secret in service.get("secrets", []):
            assert secret in doc["secrets"], (name, secret)
    ignored = (DEPLOY / ".gitignore").read_text().split()
    assert {"secrets/", "tls/"} <= set(ignored)


def test_nats_credentials_are_in_the_environment_file_not_the_url() -> None:
    lines = (DEPLOY / "systemd" / "vedette.env.example").read_text().splitlines()
    env = dict(x.split("=", 1) for x in lines if x and not x.startswith("#"))
    assert "@" not in env["NATS_URL"] and env["NATS_URL"].startswith("tls://")
    assert env["NATS_URL"].count("tls://") == 3
    assert env["VEDETTE_NATS_USER"] == "vedette" and env["VEDETTE_NATS_PASSWORD"] == "CHANGE_ME"
    # The servers verify the client certificates the roles present.
    conf = (DEPLOY / "nats" / "nats.conf").read_text()
    clients = conf.split("tls {", 1)[1].split("}", 1)[0]
    assert "verify: true" in clients


def test_no_password_literal_in_any_deploy_file() -> None:
    assignment = re.compile(r"(password|passwd)\s*[:=]\s*(\S+)", re.I)
    # A reference to a variable, a secret file, or the example file's placeholder.
    allowed = ("$", '"$', "'$", "{file:", "CHANGE_ME")
    checked = 0
    for path in sorted(DEPLOY.rglob("*")):
        if not path.is_file():
            continue
        checked += 1
        for n, line in enumerate(path.read_text().splitlines(), 1):
            # psql's :'name' is a variable given with -v (from a secret file in the script).
            code = re.sub(r":'\w+'", "$psql", line.split("#", 1)[0])
            for match in assignment.finditer(code):
                where = f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
                assert match.group(2).startswith(allowed), where
    assert checked >= 8


def test_nats_cluster_config_is_valid(tmp_path: Path) -> None:
    try:
        binary = _binary()
    except RuntimeError:
        if os.environ.get("CI"):
            raise
        pytest.skip("no nats-server binary")
    # Certificates of a throwaway CA where the config expects the mounted ones.
    ca = trustme.CA()
    cert = ca.issue_cert("nats1", "nats2", "nats3")
    tls = tmp_path / "tls"
    tls.mkdir()
    for name in ("server", "route"):
        cert.private_key_pem.write_to_path(str(tls / f"{name}.key"))
        cert.cert_chain_pems[0].write_to_path(str(tls / f"{name}.pem"))
    ca.cert_pem.write_to_path(str(tls / "ca.pem"))
    text = (DEPLOY / "nats" / "nats.conf").read_text()
    assert "sync_interval: always" in text
    assert text.count("nats-route://") == 3
    conf = tmp_path / "nats.conf"
    conf.write_text(text.replace("/etc/nats/tls", str(tls)).replace("/data/", f"{tmp_path}/data/"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NATS_")}

    def check(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, "-t", "-c", str(conf)], capture_output=True, text=True,
            env={**env, **extra}, check=False, timeout=60,
        )  # fmt: skip

    done = check({"NATS_SERVER_NAME": "nats1", "NATS_VEDETTE_PASSWORD": "from-a-secret-file"})
    assert done.returncode == 0, done.stderr + done.stdout
    # The password is not in the file: without it in the environment the server refuses.
    missing = check({"NATS_SERVER_NAME": "nats1"})
    assert missing.returncode != 0
    assert "NATS_VEDETTE_PASSWORD" in missing.stderr + missing.stdout
