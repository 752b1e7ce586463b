"""The console's catalogues are complete in every language, and no template shows text that
does not go through them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vedette.web import catalog, i18n
from vedette.web.render import TEMPLATES, environment

pytestmark = pytest.mark.embedded_only("no centre: the console's message catalogues and templates")

MESSAGES = catalog.extract()
PLACEHOLDER = re.compile(r"%\([a-z_]+\)s")
# Text a template may show as it is: names, symbols and punctuation, not words to translate.
LITERAL_OK = re.compile(r"^[\s#·:—,()|%./&;-]*(Vedette)?$")
# Blocks that fill an attribute (class names, data attributes), not text.
ATTRIBUTE_BLOCKS = re.compile(r"\{% block (body_class|main_attrs) %\}.*?\{% endblock %\}", re.S)


def test_the_extraction_finds_the_pages_messages() -> None:
    assert "Alert queue" in MESSAGES and "Log in" in MESSAGES
    assert "Credential Access" in MESSAGES  # from labels.py (N_)
    assert "Closing needs a reason." in MESSAGES  # from routes_console.py


@pytest.mark.parametrize("lang", sorted(i18n.LANGUAGES))
def test_every_message_is_translated(lang: str) -> None:
    lacking = catalog.missing(lang, MESSAGES)
    assert not lacking, f"{lang}: {len(lacking)} untranslated: {lacking[:20]}"


@pytest.mark.parametrize("lang", sorted(i18n.LANGUAGES))
def test_translations_keep_their_placeholders(lang: str) -> None:
    wrong = []
    for message in i18n.read_catalog(lang):
        ids = set(PLACEHOLDER.findall(str(message.id)))
        if message.id and message.string and ids != set(PLACEHOLDER.findall(str(message.string))):
            wrong.append(message.id)
    assert not wrong, wrong


def test_the_check_can_fail() -> None:
    """A message that is in no catalogue is reported missing in both languages."""
    for lang in i18n.LANGUAGES:
        assert catalog.missing(lang, ["A sentence nobody translated"]) == [
            "A sentence nobody translated"
        ]


def _bare_text(source: str) -> list[str]:
    """Text of a template outside Jinja tags and expressions, HTML tags, and comments."""
    without = ATTRIBUTE_BLOCKS.sub(" ", source)
    without = re.sub(r"\{#.*?#\}", " ", without, flags=re.S)
    without = re.sub(r"\{%.*?%\}", "\n", without, flags=re.S)
    without = re.sub(r"\{\{.*?\}\}", "\n", without, flags=re.S)
    without = re.sub(r"<!--.*?-->", " ", without, flags=re.S)
    without = re.sub(r"<script.*?</script>", " ", without, flags=re.S)
    without = re.sub(r"<[^>]*>", "\n", without, flags=re.S)
    return [t.strip() for t in without.split("\n") if not LITERAL_OK.match(t.strip())]


ATTRIBUTES = re.compile(r'\b(?:aria-label|title|placeholder|alt)="([^"]*)"')


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_templates_show_no_untranslated_text(template: str) -> None:
    source = (TEMPLATES / template).read_text()
    assert _bare_text(source) == []
    for value in ATTRIBUTES.findall(source):
        assert value.startswith("{{") or not re.search(r"[A-Za-z]", value), value


def test_the_template_check_can_fail() -> None:
    assert _bare_text("<p>{{ _('Fine') }}</p><p>Not translated</p>") == ["Not translated"]


@pytest.mark.parametrize("lang", sorted(i18n.LANGUAGES))
def test_every_template_compiles(lang: str) -> None:
    env = environment(lang)
    for path in Path(TEMPLATES).glob("*.html"):
        env.get_template(path.name)


def test_language_choice_order() -> None:
    assert i18n.pick("vi", "en", "en") == "vi"
    assert i18n.pick(None, "vi", "en") == "vi"
    assert i18n.pick(None, None, "fr-FR, vi;q=0.8, en;q=0.5") == "vi"
    assert i18n.pick(None, None, "en;q=0.3, vi;q=0.9") == "vi"
    assert i18n.pick("xx", "yy", "fr") == "en"


def test_numbers_and_dates_follow_the_language() -> None:
    from datetime import UTC, datetime

    moment = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert i18n.Formats("en").number(1234567) == "1,234,567"
    assert i18n.Formats("vi").number(1234567) == "1.234.567"
    assert i18n.Formats("en").when(moment) == "Mar 4, 2026, 5:06:07\u202fAM UTC"
    assert "thg 3" in i18n.Formats("vi").when(moment)
