"""Rendering console pages: one Jinja2 environment per language, autoescaped, with the i18n
extension bound to that language's Babel catalogue.

Every value reaches the HTML through Jinja2's autoescape (event fields are attacker-chosen);
no template uses ``|safe``. Answers carry the security headers of :mod:`vedette.web.security`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from vedette import __version__
from vedette.store.state.scope import Scope
from vedette.web import i18n
from vedette.web.labels import label
from vedette.web.security import THEME_COOKIE, THEMES, YEAR, protect, set_cookie

R = TypeVar("R", bound=Response)

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"


@cache
def environment(lang: str) -> Environment:
    """The Jinja2 environment of ``lang`` (built once per process)."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"], default=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
    formats = i18n.Formats(lang)
    env.filters["when"] = formats.when
    env.filters["number"] = formats.number
    env.filters["rate"] = formats.rate
    catalogue = i18n.translations(lang)
    env.filters["tr"] = lambda code: catalogue.gettext(label(code)) if code else ""
    env.globals["LANGUAGES"] = i18n.LANGUAGES
    env.globals["version"] = __version__
    return env


@dataclass(slots=True)
class Page:
    """The request-wide facts every page needs: language, theme, user and CSRF token."""

    request: Request
    lang: str
    theme: str
    scope: Scope | None = None
    csrf: str = ""
    cookies: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, request: Request) -> Page:
        """Language and theme of ``request``; a ``?lang=`` or ``?theme=`` choice is remembered."""
        query_lang = request.query_params.get("lang")
        lang = i18n.pick(
            query_lang, request.cookies.get(i18n.COOKIE), request.headers.get("accept-language")
        )
        query_theme = request.query_params.get("theme")
        theme = query_theme or request.cookies.get(THEME_COOKIE, "dark")
        page = cls(request=request, lang=lang, theme=theme if theme in THEMES else "dark")
        if query_lang in i18n.LANGUAGES:
            page.cookies[i18n.COOKIE] = lang
        if query_theme in THEMES:
            page.cookies[THEME_COOKIE] = page.theme
        return page

    def gettext(self, message: str) -> str:
        """``message`` in the page's language (for text built in Python)."""
        return i18n.translations(self.lang).gettext(message)

    def render(self, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        """The template rendered for this page, with the console's headers and cookies."""
        body = (
            environment(self.lang)
            .get_template(template)
            .render(
                page=self,
                user=self.scope.principal if self.scope else None,
                path=self.request.url.path,
                **context,
            )
        )
        return self.finish(HTMLResponse(body, status_code=status))

    def finish(self, response: R) -> R:
        """Security headers and remembered choices on any console answer."""
        for name, value in self.cookies.items():
            set_cookie(response, self.request, name, value, max_age=YEAR)
        protect(response)
        return response
