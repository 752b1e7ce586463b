"""Retro-hunt jobs as the console shows them: progress in the user's language, the form's
time ranges, and the alerts a job raised, read through the caller's :class:`Scope`.

The hunt page and the JSON its script polls (``GET /console/retrohunts``) build their rows with
the same :func:`job_view`, so a live update shows exactly what a reload would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from vedette.store.state.models import Alert
from vedette.store.state.retrohunts import FINISHED
from vedette.store.state.scope import Scope, require
from vedette.web import i18n
from vedette.web.labels import label

LOOKBACK_HOURS: Final = (24, 168, 720, 2160)
"""The form's lookback choices (hours); "all" reads every stored day."""
DEFAULT_LOOKBACK: Final = "168"
JOBS_SHOWN: Final = 100
MAX_RULE_CHARS: Final = 200_000
ALERTS_SHOWN: Final = 200
POLL_IDS: Final = 100
"""At most this many job ids in one poll of ``/console/retrohunts``."""


def time_range(
    lookback: str, since: datetime | None, until: datetime | None, now: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """The job's range: the form's From/To when given, else the lookback up to now ("all":
    no lower bound)."""
    if since is not None or until is not None:
        return since, until
    if lookback.isdigit() and int(lookback) in LOOKBACK_HOURS:
        end = now or datetime.now(UTC)
        return end - timedelta(hours=int(lookback)), end
    return None, None


def job_view(job: Mapping[str, Any], lang: str) -> dict[str, Any]:
    """What a job's row shows, in ``lang`` (numbers formatted, status translated)."""
    catalogue = i18n.translations(lang)
    number = i18n.Formats(lang).number
    status = str(job["status"])
    return {
        "id": int(job["id"]),
        "unit": job["unit"],
        "status": status,
        "status_label": catalogue.gettext(label(status)),
        "finished": status in FINISHED,
        "percent": max(0, min(100, round(100 * float(job.get("progress") or 0.0)))),
        "units": catalogue.gettext("%(done)s of %(total)s units")
        % {"done": number(job["units_done"]), "total": number(job["units_total"])},
        "days": catalogue.gettext("%(done)s of %(total)s unit-days")
        % {"done": number(job["days_done"]), "total": number(job["days_total"])},
        "events": number(job["events_read"]),
        "hits": number(job["hits"]),
        "alerts": number(job["alerts"]),
        "error": str(job.get("error") or ""),
    }


def poll_ids(text: str) -> list[int]:
    """Job ids from ``?ids=1,2,3`` (numbers only, at most :data:`POLL_IDS`)."""
    found = [int(part) for part in text.split(",") if part.isdigit() and len(part) < 19]
    return list(dict.fromkeys(found))[:POLL_IDS]


def job_alerts(session: Session, scope: Scope, alert_ids: Sequence[Any]) -> list[Alert]:
    """The caller's alerts among ``alert_ids`` (the first :data:`ALERTS_SHOWN`), newest first."""
    require(scope.can_read(), "read alerts")
    ids = [int(i) for i in alert_ids if isinstance(i, int)][:ALERTS_SHOWN]
    if not ids:
        return []
    query = (
        select(Alert)
        .options(joinedload(Alert.unit))
        .where(Alert.id.in_(ids), Alert.unit_id.in_(scope.unit_ids))
        .order_by(Alert.id.desc())
    )
    return list(session.scalars(query))
