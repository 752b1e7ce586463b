"""The link to NATS: TLS with a client certificate, a password from the environment, a NATS
credentials file (JWT and nkey seed), stream replicas, each against a real nats-server started
here with that configuration (one, or a cluster of three for the replicas).

Certificates come from a throwaway CA (trustme, on the ``cryptography`` package). The server
verifies client certificates and asks for a user and password; the password reaches it, and
vedette, through the environment only.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from scalekit import Cluster
from serverkit import VEDETTE

from natsjwt import Trust
from natsserver import NatsServer, _free_port
from vedette.errors import ConfigError
from vedette.store.jetstream import JetStreamConfig, JetStreamSpool, partition_of
from vedette.store.natsauth import NatsAuth

PASSWORD = "s3cret-for-the-test-only"
SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "windows" / "WS-FIN-07"


@pytest.fixture
def tls_files(work_dir: Path) -> dict[str, Path]:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("vedette-worker")
    other = trustme.CA().issue_cert("intruder")  # signed by a CA the server does not trust
    folder = work_dir / "tls"
    folder.mkdir()
    files = {
        "ca": folder / "ca.pem",
        "server_cert": folder / "server.pem",
        "server_key": folder / "server.key",
        "client_cert": folder / "client.pem",
        "client_key": folder / "client.key",
        "other_cert": folder / "other.pem",
        "other_key": folder / "other.key",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.cert_chain_pems[0].write_to_path(str(files["server_cert"]))
    server.private_key_pem.write_to_path(str(files["server_key"]))
    client.cert_chain_pems[0].write_to_path(str(files["client_cert"]))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    other.cert_chain_pems[0].write_to_path(str(files["other_cert"]))
    other.private_key_pem.write_to_path(str(files["other_key"]))
    return files


@pytest.fixture
def secure_nats(work_dir: Path, tls_files: dict[str, Path]) -> Iterator[NatsServer]:
    """TLS only, client certificates verified, user ``vedette`` with a password from $VAR."""
    server = NatsServer(
        root=work_dir / "nats-secure",
        port=_free_port(),
        scheme="tls",
        env={"NATS_TEST_PASSWORD": PASSWORD},
        extra_config=(
            "tls {\n"
            f'  cert_file: "{tls_files["server_cert"]}"\n'
            f'  key_file: "{tls_files["server_key"]}"\n'
            f'  ca_file: "{tls_files["ca"]}"\n'
            "  verify: true\n"
            "  timeout: 5\n"
            "}\n"
            "authorization {\n"
            "  users = [ { user: vedette, password: $NATS_TEST_PASSWORD } ]\n"
            "}\n"
        ),
    )
    server.root.mkdir(parents=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _auth(tls: dict[str, Path], **env: str) -> NatsAuth:
    return NatsAuth.from_env(
        env, tls_ca=tls["ca"], tls_cert=tls["client_cert"], tls_key=tls["client_key"]
    )


def test_the_spool_connects_with_tls_and_the_password_and_is_refused_otherwise(
    secure_nats: NatsServer, tls_files: dict[str, Path]
) -> None:
    good = {"VEDETTE_NATS_USER": "vedette", "VEDETTE_NATS_PASSWORD": PASSWORD}
    spool = JetStreamSpool(
        JetStreamConfig(url=secure_nats.url, partitions=2, auth=_auth(tls_files, **good))
    )
    try:
        done = spool.append("north", "json", [b'{"n": 1}'])
        view = spool.partition(partition_of("north", 2))
        assert [b.records for b in view.read(0, 10)] == [[b'{"n": 1}']]
        assert done.seq >= 1 and spool.replicas == 1
    finally:
        spool.close()

    def refused(auth: NatsAuth, url: str = secure_nats.url) -> str:
        started = time.monotonic()
        with pytest.raises(ConfigError) as caught:
            JetStreamSpool(JetStreamConfig(url=url, partitions=2, auth=auth, connect_timeout=30))
        assert time.monotonic() - started < 60
        message = str(caught.value)
        assert PASSWORD not in message and "wrong-one" not in message
        return message

    wrong = {"VEDETTE_NATS_USER": "vedette", "VEDETTE_NATS_PASSWORD": "wrong-one"}
    assert "authorization" in refused(_auth(tls_files, **wrong)).lower()
    assert "authorization" in refused(_auth(tls_files)).lower()  # no password at all
    # No client certificate, or one from another CA: the server ends the handshake.
    message = refused(NatsAuth.from_env(good, tls_ca=tls_files["ca"]))
    assert "cannot connect to NATS" in message
    message = refused(
        NatsAuth.from_env(
            good,
            tls_ca=tls_files["ca"],
            tls_cert=tls_files["other_cert"],
            tls_key=tls_files["other_key"],
        )
    )
    assert "cannot connect to NATS" in message
    # The server's certificate from a CA vedette was not told to trust.
    message = refused(
        NatsAuth.from_env(good, tls_cert=tls_files["client_cert"], tls_key=tls_files["client_key"])
    )
    assert "certificate verify failed" in message or "TLS" in message
    # A password in the URL is never repeated in a message.
    url = secure_nats.url.replace("tls://", f"tls://vedette:{PASSWORD}@")
    refused(NatsAuth.from_env({}, tls_ca=tls_files["ca"]), url=url)


def test_settings_that_cannot_work_are_refused_before_connecting(
    tls_files: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="VEDETTE_NATS_USER"):
        NatsAuth.from_env({"VEDETTE_NATS_PASSWORD": "x"})
    with pytest.raises(ConfigError, match="go together"):
        NatsAuth.from_env({}, tls_cert=tls_files["client_cert"])
    with pytest.raises(ConfigError, match="no such file"):
        NatsAuth.from_env({}, tls_ca=tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match="one NATS credential"):
        NatsAuth.from_env({"VEDETTE_NATS_TOKEN": "t", "VEDETTE_NATS_USER": "u",
                           "VEDETTE_NATS_PASSWORD": "p"})  # fmt: skip
    assert PASSWORD not in repr(
        NatsAuth.from_env({"VEDETTE_NATS_USER": "u", "VEDETTE_NATS_PASSWORD": PASSWORD})
    )


def test_api_and_worker_over_tls_with_the_password_in_the_environment(
    work_dir: Path,
    secure_nats: NatsServer,
    tls_files: dict[str, Path],
    database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Inherited by the api and worker processes; never on their command lines.
    monkeypatch.setenv("VEDETTE_NATS_USER", "vedette")
    monkeypatch.setenv("VEDETTE_NATS_PASSWORD", PASSWORD)
    cluster = Cluster(work_dir, secure_nats.url, database, partitions=2, rules=())
    tls = [
        "--nats-tls-ca", str(tls_files["ca"]),
        "--nats-tls-cert", str(tls_files["client_cert"]),
        "--nats-tls-key", str(tls_files["client_key"]),
    ]  # fmt: skip
    cluster.api.args += tls
    cluster.add_units([("hq", None), ("branch-a", "hq")])
    ingest = cluster.token("branch-a", "ingest")
    reader = cluster.token("hq", "analyst")
    body = (SAMPLES / "sysmon.jsonl").read_bytes()
    events = len([x for x in body.splitlines() if x.strip()])
    cluster.api.start()
    worker = cluster.add_worker()
    worker.args += tls
    worker.start()
    try:
        with cluster.api.client(ingest) as http:
            answer = http.post(
                "/api/v1/events", content=body, headers={"Content-Type": "application/x-ndjson"}
            )
        assert answer.status_code == 202, answer.text
        cluster.api.wait_stored(reader, "branch-a", events, timeout=120)
        for process in (cluster.api.process, worker.process):
            assert process is not None
            assert PASSWORD not in " ".join(str(a) for a in process.args)  # type: ignore[union-attr]
        assert PASSWORD not in cluster.logs()
    finally:
        cluster.kill_all()


def test_replicas_the_server_cannot_place_are_refused(
    work_dir: Path, nats_server: str, database: str
) -> None:
    with pytest.raises(ConfigError, match="3 replicas"):
        JetStreamSpool(JetStreamConfig(url=nats_server, partitions=2, replicas=3))
    # Through the command: the worker exits at once with the reason, no traceback.
    home = work_dir / "worker"
    done = subprocess.run(
        [*VEDETTE, "serve", "--role", "worker", "--home", str(home), "--nats", nats_server,
         "--database", database, "--store", str(work_dir / "store"), "--partitions", "2",
         "--replicas", "3"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode != 0
    assert "3 replicas" in done.stderr and "cluster" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def _cluster_of_three(work_dir: Path) -> list[NatsServer]:
    ports = [(_free_port(), _free_port()) for _ in range(3)]
    routes = ", ".join(f"nats-route://127.0.0.1:{route}" for _, route in ports)
    servers = []
    for n, (client, route) in enumerate(ports, 1):
        server = NatsServer(
            root=work_dir / f"nats{n}",
            port=client,
            extra_config=(
                f"server_name: n{n}\n"
                "cluster {\n"
                "  name: vedette-test\n"
                f"  listen: 127.0.0.1:{route}\n"
                f"  routes: [ {routes} ]\n"
                "}\n"
            ),
        )
        server.root.mkdir(parents=True)
        servers.append(server)
    return servers


def test_three_replicas_on_a_three_server_cluster(work_dir: Path) -> None:
    servers = _cluster_of_three(work_dir)
    try:
        for server in servers:
            server.start()
        url = ",".join(s.url for s in servers)
        config = JetStreamConfig(url=url, partitions=2, replicas=3)
        # The cluster elects its metadata leader first: until then placement fails.
        deadline = time.monotonic() + 120
        while True:
            try:
                spool = JetStreamSpool(config)
                break
            except ConfigError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
        try:
            assert spool.replicas == 3
            first = spool.append("north", "json", [b'{"n": 1}'])
            assert first.seq >= 1
            # One server down: two of three still make a quorum.
            servers[2].stop()
            view = spool.partition(partition_of("north", 2))
            deadline = time.monotonic() + 120
            while True:
                try:
                    spool.append("north", "json", [b'{"n": 2}'])
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            records = [r for b in view.read(0, 10) for r in b.records]
            assert records == [b'{"n": 1}', b'{"n": 2}']
        finally:
            spool.close()
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def operator_nats(work_dir: Path) -> Iterator[tuple[NatsServer, Trust]]:
    """A server in operator mode (JWT auth) trusting one account with JetStream."""
    trust = Trust.make()
    server = NatsServer(
        root=work_dir / "nats-operator", port=_free_port(), extra_config=trust.server_config()
    )
    server.root.mkdir(parents=True)
    server.start()
    try:
        yield server, trust
    finally:
        server.stop()


def test_a_credentials_file_authenticates_and_a_stranger_s_is_refused(
    work_dir: Path, operator_nats: tuple[NatsServer, Trust], database: str, stream_name: str
) -> None:
    server, trust = operator_nats
    creds = trust.user_creds(work_dir / "vedette.creds")
    # A stream of its own: the centre below must not meet this test's unit.
    spool = JetStreamSpool(
        JetStreamConfig(
            url=server.url,
            stream=stream_name,
            subject_prefix=stream_name.lower(),
            partitions=2,
            auth=NatsAuth.from_env({}, creds=creds),
        )
    )
    try:
        spool.append("north", "json", [b'{"n": 1}'])
        view = spool.partition(partition_of("north", 2))
        assert [b.records for b in view.read(0, 10)] == [[b'{"n": 1}']]
    finally:
        spool.close()
    # A user of an account the server does not know, and no credentials at all.
    stranger = Trust.make().user_creds(work_dir / "stranger.creds")
    for auth in (NatsAuth.from_env({}, creds=stranger), NatsAuth()):
        with pytest.raises(ConfigError, match=r"(?i)authorization"):
            JetStreamSpool(
                JetStreamConfig(url=server.url, partitions=2, auth=auth, connect_timeout=30)
            )

    # The roles with --nats-creds: events in through the api, stored by the worker.
    cluster = Cluster(work_dir / "cluster", server.url, database, partitions=2, rules=())
    cluster.api.args += ["--nats-creds", str(creds)]
    cluster.add_units([("hq", None), ("branch-a", "hq")])
    ingest = cluster.token("branch-a", "ingest")
    reader = cluster.token("hq", "analyst")
    body = (SAMPLES / "sysmon.jsonl").read_bytes()
    events = len([x for x in body.splitlines() if x.strip()])
    cluster.api.start()
    worker = cluster.add_worker()
    worker.args += ["--nats-creds", str(creds)]
    worker.start()
    try:
        with cluster.api.client(ingest) as http:
            answer = http.post(
                "/api/v1/events", content=body, headers={"Content-Type": "application/x-ndjson"}
            )
        assert answer.status_code == 202, answer.text
        try:
            cluster.api.wait_stored(reader, "branch-a", events, timeout=120)
        except AssertionError:
            raise AssertionError(cluster.logs()) from None
    finally:
        cluster.kill_all()
