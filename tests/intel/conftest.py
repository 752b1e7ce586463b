"""Fixtures shared by the intel and ATT&CK tests."""

from __future__ import annotations

import pytest

ENCODED_POWERSHELL = """\
title: Encoded PowerShell
id: 11111111-1111-1111-1111-111111111111
status: test
level: high
tags: [attack.execution, attack.t1059.001]
logsource: {product: windows, category: process_creation}
detection:
  selection: {CommandLine|contains: ' -enc '}
  condition: selection
"""


@pytest.fixture
def powershell_rule() -> str:
    """One Sigma rule tagged execution / T1059.001 (id 1111...), the coverage tests' anchor."""
    return ENCODED_POWERSHELL
