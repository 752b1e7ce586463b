"""Keeping the console's catalogues complete: extract every message of the templates and of
the console's Python, and update the ``.po`` files of every language.

``python -m vedette.web.catalog`` adds new messages (English filled with the message itself,
other languages left empty for a translator) and drops ones no longer used; a test fails while
any message is untranslated in any language.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import write_po

from vedette.web import i18n

WEB = Path(__file__).resolve().parent
SERVER = WEB.parent / "server"
METHODS = [
    ("templates/**.html", "jinja2.ext:babel_extract"),
    ("**.py", "python"),
]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "false"}}
KEYWORDS = {"_": None, "gettext": None, "N_": None}


def extract() -> dict[str, list[tuple[str, int]]]:
    """Every message id the console can show, with where it comes from."""
    found: dict[str, list[tuple[str, int]]] = {}

    def add(base: Path, prefix: str, methods: list[tuple[str, str]]) -> None:
        for name, line, message, _comments, _context in extract_from_dir(
            str(base), methods, options_map=OPTIONS, keywords=KEYWORDS
        ):
            if isinstance(message, str) and message:
                found.setdefault(message, []).append((f"{prefix}/{name}", line))

    add(WEB, "web", METHODS)
    # The page routes build a few messages in Python (flash and error texts).
    add(SERVER, "server", [("routes_console.py", "python"), ("routes_console_hunt.py", "python")])
    return found


def missing(lang: str, messages: Iterable[str]) -> list[str]:
    """Messages with no (or a fuzzy) translation in ``lang``'s catalogue."""
    catalog = i18n.read_catalog(lang)
    out = []
    for message in messages:
        entry = catalog.get(message)
        if entry is None or not entry.string or entry.fuzzy:
            out.append(message)
    return out


def update(lang: str) -> Catalog:
    """``lang``'s catalogue with every current message (old translations kept)."""
    messages = extract()
    path = i18n.po_path(lang)
    old = i18n.read_catalog(lang) if path.exists() else Catalog(locale=lang)
    new = Catalog(locale=lang, project="Vedette", charset="utf-8")
    for message, places in sorted(messages.items()):
        previous = old.get(message)
        string = previous.string if previous and previous.string else ""
        if lang == "en" and not string:
            string = message
        new.add(message, string, locations=places)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        write_po(handle, new, width=100, sort_output=True)
    return new


def main() -> int:
    """Update every language's catalogue; print how many messages each lacks."""
    for lang in i18n.LANGUAGES:
        catalog = update(lang)
        lacking = [m.id for m in catalog if m.id and not m.string]
        print(f"{lang}: {len(catalog)} messages, {len(lacking)} untranslated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
