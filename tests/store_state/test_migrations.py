"""Schema versions: a first-version database upgrades keeping its data (after a backup on
SQLite); a newer one is refused; the models match what the migrations build."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from vedette.store.state import SchemaTooNew, add_unit, list_alerts, open_state
from vedette.store.state.db import head_revision, make_engine, normalise_url, upgrade
from vedette.store.state.models import Base, UnitStats
from vedette.store.state.scope import Principal, Role, Scope


def _version(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def test_fresh_database_is_at_head(state_url: str, work_dir: Path) -> None:
    state = open_state(state_url, backup_dir=work_dir / "backups")
    state.close()
    # The newest revision file is the head: migrations form one line, never a fork.
    versions = Path(__file__).resolve().parents[2] / "src/vedette/store/state/migrations/versions"
    newest = max(p.name.split("_")[0] for p in versions.glob("0*.py"))
    assert _version(state_url) == head_revision() == newest
    assert not (work_dir / "backups").exists()


def test_models_match_migrations(state_url: str) -> None:
    open_state(state_url).close()
    engine = make_engine(state_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_first_version_upgrades_keeping_data(state_url: str, work_dir: Path) -> None:
    upgrade(state_url, "0001")
    assert _version(state_url) == "0001"
    engine = make_engine(state_url)
    now = "2026-03-01 12:00:00"
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO units (name, parent_id, created_at) VALUES ('hq', NULL, :t)"),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO alerts (unit_id, fingerprint, kind, rule_id, rule_title, level,"
                " status, count, first_seen, last_seen, attack, matched, sample_event,"
                " created_at, updated_at) VALUES (1, 'fp', 'sigma', 'r1', 'Rule', 'high',"
                " 'new', 3, :t, :t, '[]', '{}', '{}', :t, :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO alert_comments (alert_id, author, text, created_at)"
                " VALUES (1, 'a', 'kept', :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO unit_stats (unit_id, events_received, events_stored) VALUES (1, 10, 9)"
            )
        )
    engine.dispose()

    state = open_state(state_url, backup_dir=work_dir / "backups")
    try:
        assert _version(state_url) == head_revision()
        scope = Scope(
            principal=Principal(
                kind="user", id=1, name="t", unit_id=1, unit_name="hq", role=Role.VIEWER
            ),
            unit_ids=frozenset({1}),
        )
        with state.session() as session:
            (alert,), _ = list_alerts(session, scope)
            assert (alert.id, alert.count, alert.observables, alert.unit.name) == (
                1,
                3,
                [],
                "hq",
            )
            assert alert.first_seen.tzinfo is not None
            stats = session.get(UnitStats, 1)
            assert stats is not None and (stats.events_received, stats.silent_alerted) == (
                10,
                False,
            )
            comments = session.execute(text("SELECT text FROM alert_comments")).scalars().all()
            assert comments == ["kept"]
            # The upgraded store takes new writes.
            add_unit(session, name="branch", parent="hq", actor="t")
    finally:
        state.close()

    backups = sorted((work_dir / "backups").glob("state-0001-*.db"))
    if state_url.startswith("sqlite"):
        assert len(backups) == 1
        with sqlite3.connect(backups[0]) as copy:
            assert copy.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001",)]
            assert copy.execute("SELECT name FROM units").fetchall() == [("hq",)]
    else:
        assert backups == []  # PostgreSQL: the operator's backup is assumed


def test_newer_schema_is_refused(state_url: str) -> None:
    open_state(state_url).close()
    engine = make_engine(state_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    with pytest.raises(SchemaTooNew, match="9999_future"):
        open_state(state_url)
    assert _version(state_url) == "9999_future"  # left as it was


def test_sqlite_folder_is_made_and_urls_are_normalised(work_dir: Path) -> None:
    path = work_dir / "home" / "state" / "state.db"
    open_state(f"sqlite:///{path}").close()
    assert path.is_file()
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_warning_jobs_made_twice_before_0019_are_kept_renamed(state_url: str) -> None:
    """0019's unique index on the warning jobs' titles: older duplicates are renamed first."""
    upgrade(state_url, "0018")
    engine = make_engine(state_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO units (name, created_at) VALUES ('hq', :t)"),
                         {"t": "2026-03-01 12:00:00"})  # fmt: skip
            for kind in ("warning", "warning", "sigma", "sigma"):
                conn.execute(
                    text(
                        "INSERT INTO retrohunts (owner_unit_id, kind, title, spec, units, status,"
                        " progress, files_total, files_done, events_read, hits, excepted,"
                        " alert_ids, samples, cancel_requested, created_by, created_at)"
                        " VALUES (1, :kind, 'Early warning: observables of alert 5', '{}', '[]',"
                        " 'done', 1, 0, 0, 0, 0, 0, '[]', '[]', false, 'x', :t)"
                    ),
                    {"kind": kind, "t": "2026-03-01 12:00:00"},
                )
        upgrade(state_url, "head")
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, kind, title FROM retrohunts ORDER BY id")).all()
            title = "Early warning: observables of alert 5"
            assert [tuple(r) for r in rows] == [
                (1, "warning", f"{title} (duplicate 1)"),
                (2, "warning", title),
                (3, "sigma", title),
                (4, "sigma", title),
            ]
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text("UPDATE retrohunts SET title = :t WHERE id = 1"), {"t": title})
    finally:
        engine.dispose()
