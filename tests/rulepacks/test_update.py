"""`vedette rules update` against a local HTTP server serving zips made here; never the internet."""

from __future__ import annotations

import http.server
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from datasets import dataset
from vedette.cli.main import main
from vedette.detect import Engine
from vedette.rulepacks import (
    RuleUpdateError,
    default_rule_paths,
    read_manifest,
    starter_pack_dir,
    update_rules,
)
from vedette.rulepacks.download import fetch
from vedette.rulepacks.install import MANIFEST_NAME, update_lock
from vedette.rulepacks.sigmahq import package_url, release_tag

RULE = """\
title: Test rule {n}
id: 00000000-0000-4000-8000-{n:012d}
status: test
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '\\\\tool{n}.exe'
    condition: selection
level: high
"""


def rule_zip(count: int, *, extra: dict[str, str] | None = None) -> bytes:
    """A SigmaHQ-shaped release zip with ``count`` rules under rules/windows/."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for n in range(count):
            zf.writestr(f"rules/windows/proc_creation_test_{n}.yml", RULE.format(n=n))
        zf.writestr("LICENSE.Detection.Rules.md", "Detection Rule License 1.1\n")
        zf.writestr("rules/notes.txt", "not a rule, not kept\n")
        for name, text in (extra or {}).items():
            zf.writestr(name, text)
    return buffer.getvalue()


class FakeReleaseServer:
    """Serves ``routes`` (path -> (status, body)); `/latest/...` redirects to a tagged path."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.requests: list[str] = []
        routes, requests = self.routes, self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                if self.path.startswith("/latest/"):
                    asset = self.path.removeprefix("/latest/")
                    self.send_response(302)
                    self.send_header("Location", f"/releases/download/r2026-11-17/{asset}")
                    self.end_headers()
                    return
                status, body = routes.get(self.path, (404, b"not found"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                del format, args

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{path}"


@pytest.fixture
def server() -> Iterator[FakeReleaseServer]:
    fake = FakeReleaseServer()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VEDETTE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def rules_folder_entries(home: Path) -> list[str]:
    """What an update left in the rules folder, apart from its lock file."""
    return sorted(p.name for p in (home / "rules").iterdir() if p.name != ".update.lock")


def installed_rules(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "rules" / "sigma").rglob("*.yml"))


def test_update_installs_rules_and_records_the_release(
    server: FakeReleaseServer, home: Path
) -> None:
    server.routes["/releases/download/r2026-11-17/sigma_core.zip"] = (200, rule_zip(3))
    result = update_rules(url=server.url("/latest/sigma_core.zip"))

    target = home / "rules" / "sigma"
    assert result.path == target
    assert result.installed.rule_count == 3
    assert result.installed.version == "r2026-11-17"
    assert result.previous is None
    assert installed_rules(home) == [f"proc_creation_test_{n}.yml" for n in range(3)]
    assert (target / "LICENSE.Detection.Rules.md").is_file()
    assert not (target / "rules" / "notes.txt").exists()
    manifest = json.loads((target / MANIFEST_NAME).read_text())
    assert manifest["rule_count"] == 3 and len(manifest["archive_sha256"]) == 64
    assert default_rule_paths()[-1] == target


def test_second_update_replaces_the_first_and_reports_it(
    server: FakeReleaseServer, home: Path
) -> None:
    server.routes["/a.zip"] = (200, rule_zip(5))
    server.routes["/b.zip"] = (200, rule_zip(2))
    update_rules(url=server.url("/a.zip"))
    result = update_rules(url=server.url("/b.zip"))

    assert result.previous is not None and result.previous.rule_count == 5
    assert installed_rules(home) == ["proc_creation_test_0.yml", "proc_creation_test_1.yml"]
    assert rules_folder_entries(home) == ["sigma"]


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (404, b"not found", "HTTP 404"),
        (200, b"<html>rate limited</html>", "not a zip archive"),
        (200, b"", "not a zip archive"),
    ],
)
def test_failed_update_keeps_the_old_rule_set(
    server: FakeReleaseServer, home: Path, status: int, body: bytes, message: str
) -> None:
    server.routes["/good.zip"] = (200, rule_zip(4))
    update_rules(url=server.url("/good.zip"))
    before = installed_rules(home)
    server.routes["/bad.zip"] = (status, body)

    with pytest.raises(RuleUpdateError, match=message):
        update_rules(url=server.url("/bad.zip"))

    assert installed_rules(home) == before
    assert (read_manifest(home / "rules" / "sigma") or pytest.fail("manifest lost")).rule_count == 4
    assert rules_folder_entries(home) == ["sigma"]


def test_zip_without_rules_is_refused(server: FakeReleaseServer, home: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("config/settings.yml", "key: value\n")
        zf.writestr("README.md", "hello\n")
    server.routes["/empty.zip"] = (200, buffer.getvalue())

    with pytest.raises(RuleUpdateError, match="no Sigma rules"):
        update_rules(url=server.url("/empty.zip"))
    assert not (home / "rules" / "sigma").exists()


def test_zip_slip_member_is_refused(server: FakeReleaseServer, home: Path) -> None:
    server.routes["/evil.zip"] = (200, rule_zip(1, extra={"../../outside.yml": RULE.format(n=9)}))

    with pytest.raises(RuleUpdateError, match="unsafe path"):
        update_rules(url=server.url("/evil.zip"))
    assert not (home / "outside.yml").exists()
    assert not (home / "rules" / "sigma").exists()


def test_concurrent_update_is_refused_and_the_first_one_completes(
    server: FakeReleaseServer, home: Path
) -> None:
    server.routes["/a.zip"] = (200, rule_zip(3))
    busy = "another `vedette rules update` is running"
    with update_lock(home / "rules"), pytest.raises(RuleUpdateError, match=busy):
        update_rules(url=server.url("/a.zip"))
    assert update_rules(url=server.url("/a.zip")).installed.rule_count == 3


def test_leftovers_of_an_interrupted_update_are_cleaned(
    server: FakeReleaseServer, home: Path
) -> None:
    (home / "rules" / ".staging-sigma-crashed" / "rules").mkdir(parents=True)
    (home / "rules" / ".retired-sigma-0badc0de").mkdir(parents=True)
    server.routes["/a.zip"] = (200, rule_zip(1))
    update_rules(url=server.url("/a.zip"))
    assert rules_folder_entries(home) == ["sigma"]


def test_unreachable_server_is_a_clear_error(home: Path) -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(RuleUpdateError, match="cannot reach"):
        update_rules(url="http://127.0.0.1:9/sigma_core.zip", timeout=5)


def test_local_file_install_needs_no_network(tmp_path: Path, home: Path) -> None:
    archive = tmp_path / "sigma_core.zip"
    archive.write_bytes(rule_zip(2))
    result = update_rules(archive=archive)
    assert result.installed.rule_count == 2
    assert result.installed.package is None


def test_cli_prints_what_it_installed(
    server: FakeReleaseServer, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.routes["/releases/download/r2026-11-17/sigma_all_rules.zip"] = (200, rule_zip(7))
    code = main(["rules", "update", "--url", server.url("/latest/sigma_all_rules.zip")])
    out = capsys.readouterr().out
    assert code == 0
    assert "r2026-11-17" in out and "7 rules" in out and str(home) in out


def test_cli_error_is_one_line_and_exit_1(
    server: FakeReleaseServer, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["rules", "update", "--url", server.url("/missing.zip")])
    err = capsys.readouterr().err
    assert code == 1
    assert "vedette: error: download failed: HTTP 404" in err
    assert "Traceback" not in err


def test_release_urls_point_at_sigmahq_latest_release() -> None:
    assert package_url("core") == (
        "https://github.com/SigmaHQ/sigma/releases/latest/download/sigma_core.zip"
    )
    assert package_url("all").endswith("/sigma_all_rules.zip")
    with pytest.raises(RuleUpdateError, match="unknown package"):
        package_url("everything")
    assert release_tag("https://x/SigmaHQ/sigma/releases/download/r2026-11-17/a.zip") == (
        "r2026-11-17"
    )
    assert release_tag("https://mirror.example.com/sigma.zip") is None


def test_installed_sigmahq_rules_load_beside_the_starter_pack(
    server: FakeReleaseServer, home: Path
) -> None:
    # A release-shaped zip of the real SigmaHQ Linux rules, served and installed, then loaded by
    # the engine from default_rule_paths() together with the starter pack.
    sigma = dataset("sigma")
    files = sorted((sigma / "rules" / "linux").rglob("*.yml"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            zf.write(path, path.relative_to(sigma).as_posix())
        zf.write(sigma / "LICENSE.Detection.Rules.md", "LICENSE.Detection.Rules.md")
    server.routes["/releases/download/r2026-11-17/sigma_core.zip"] = (200, buffer.getvalue())

    result = update_rules(url=server.url("/latest/sigma_core.zip"))
    assert result.installed.rule_count == len(files) > 100

    engine = Engine.from_paths(default_rule_paths())
    starter = len(list(starter_pack_dir().glob("*.yml")))
    report = engine.load_report
    assert report.loaded + report.correlations + len(report.errors) >= starter + len(files) - 5
    assert report.loaded >= len(files)  # the installed rules really load, not only the starter
    assert any(Path(rule.path).is_relative_to(result.path) for rule in engine.rules)


def test_oversized_download_is_refused(server: FakeReleaseServer, tmp_path: Path) -> None:
    server.routes["/big.zip"] = (200, b"x" * (3 * 1024 * 1024))
    with pytest.raises(RuleUpdateError, match="exceeds 1 MiB"):
        fetch(server.url("/big.zip"), tmp_path / "big.zip", max_bytes=1024 * 1024)


def test_file_urls_work_and_other_schemes_are_refused(tmp_path: Path, home: Path) -> None:
    archive = tmp_path / "rules.zip"
    archive.write_bytes(rule_zip(2))
    assert update_rules(url=archive.as_uri()).installed.rule_count == 2
    with pytest.raises(RuleUpdateError, match="unsupported URL"):
        update_rules(url="ftp://mirror.example.org/sigma_core.zip")
