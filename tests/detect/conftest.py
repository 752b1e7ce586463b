"""Fixtures for engine tests: build a one-rule engine from a detection block and run it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from vedette.detect import Engine
from vedette.detect.scanner import get_scanner_factory
from vedette.events import Event, LogSource

RULE_TEMPLATE = """\
title: Test rule
id: 5a5bd5b4-7f9e-4a41-9d7b-000000000001
status: test
level: high
logsource:
    product: windows
    category: process_creation
detection:
{detection}
"""

PROCESS = LogSource("windows", frozenset(), frozenset({"process_creation"}))


def _hyperscan_available() -> bool:
    try:
        return get_scanner_factory("hyperscan") is not None
    except ImportError:  # the accelerator module is mid-change: its own tests will say so
        return False


# Every scanner mode must give the same answer: "none" (each item by its own closure, the
# reference), "python" (the dictionary index) and, when it is registered, "hyperscan".
SCANNERS = ["none", "python"] + (["hyperscan"] if _hyperscan_available() else [])


def rule_text(detection: str) -> str:
    """A complete rule around an indented ``detection`` block."""
    body = textwrap.indent(textwrap.dedent(detection).strip("\n"), "    ")
    return RULE_TEMPLATE.format(detection=body)


Fires = Callable[..., bool]


@pytest.fixture
def fires() -> Fires:
    """``fires(detection_yaml, fields, placeholders=None) -> bool`` across every scanner."""

    def run(detection: str, fields: dict[str, Any], **kwargs: Any) -> bool:
        answers = {}
        for scanner in SCANNERS:
            engine = Engine.from_yaml(rule_text(detection), scanner=scanner, **kwargs)
            assert engine.load_report.errors == [], engine.load_report.errors
            answers[scanner] = bool(engine.match([Event(dict(fields), PROCESS)]))
        assert len(set(answers.values())) == 1, f"scanners disagree: {answers}"
        return next(iter(answers.values()))

    return run


@pytest.fixture
def load_error() -> Callable[..., str]:
    """``load_error(detection_yaml) -> reason`` of the one rule that must not load."""

    def run(detection: str, **kwargs: Any) -> str:
        engine = Engine.from_yaml(rule_text(detection), scanner="none", **kwargs)
        assert engine.load_report.loaded == 0
        assert len(engine.load_report.errors) == 1
        return engine.load_report.errors[0].reason

    return run


RAR_RULE = """\
title: Rar archive created
id: 6f3e2987-db24-4c78-a860-b4f4095a7095
name: good_rule
status: test
level: high
tags: [attack.collection, attack.t1560.001]
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '\\rar.exe'
    condition: selection
"""


@pytest.fixture
def rar_rule() -> str:
    """A rule that loads cleanly (id 6f3e..., name ``good_rule``, T1560.001): the loading and
    `vedette rules` tests' good rule, varied with ``str.replace`` where a test needs."""
    return RAR_RULE
