"""The console's languages: Babel catalogues read from the ``.po`` files at startup.

The ``.po`` files under ``translations/`` are the source of truth and are compiled in memory
when the console first renders (``babel.messages.pofile`` -> ``mofile`` -> ``gettext``), so a
plain ``pip install -e .`` needs no build step and a catalogue edit shows after a restart.
English has its own catalogue too, so both languages are checked for completeness alike.

The language of a request: ``?lang=`` first, then the ``vedette_lang`` cookie (remembered
choice), then ``Accept-Language``, then English.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from babel import Locale
from babel.dates import format_datetime as babel_datetime
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LANGUAGES: Mapping[str, str] = {"en": "English", "vi": "Tiếng Việt"}
"""Language code -> its own name (shown in the language switch, never translated)."""

DEFAULT = "en"
COOKIE = "vedette_lang"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"


def po_path(lang: str) -> Path:
    """The catalogue file of ``lang``."""
    return TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"


def read_catalog(lang: str) -> Catalog:
    """The parsed ``.po`` catalogue of ``lang``."""
    with po_path(lang).open("rb") as handle:
        return read_po(handle, locale=lang)


@cache
def translations(lang: str) -> gettext.GNUTranslations:
    """Compiled translations of ``lang`` (compiled once per process from the ``.po``)."""
    buffer = io.BytesIO()
    write_mo(buffer, read_catalog(lang), use_fuzzy=False)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def pick(query: str | None, cookie: str | None, accept: str | None) -> str:
    """The request's language from the query, the cookie, then ``Accept-Language``."""
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return str(candidate)
    for lang in _accepted(accept or ""):
        if lang in LANGUAGES:
            return lang
    return DEFAULT


def _accepted(header: str) -> list[str]:
    """Primary language tags of an ``Accept-Language`` header, best first."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, position, tag.split("-")[0].lower()))
    return [tag for _, _, tag in sorted(ranked)]


@dataclass(frozen=True, slots=True)
class Formats:
    """Dates and numbers in one language's conventions."""

    lang: str

    @property
    def locale(self) -> Locale:
        """The Babel locale of this language."""
        return Locale.parse(self.lang)

    def when(self, value: datetime | str | None) -> str:
        """A date and time, medium length, in UTC (the centre's clock for every unit)."""
        if value is None or value == "":
            return "—"
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                return value
        else:
            moment = value
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return babel_datetime(moment, format="medium", tzinfo=UTC, locale=self.lang) + " UTC"

    def number(self, value: float | int | None) -> str:
        """A number with the language's grouping and decimal marks."""
        if value is None:
            return "—"
        return format_decimal(value, locale=self.lang)

    def rate(self, value: float | None) -> str:
        """A rate (events/s): two decimals below 10 (a trickle still shows), whole above."""
        if value is None:
            return "—"
        return format_decimal(value, format="#,##0.0#" if value < 10 else "#,##0", locale=self.lang)
