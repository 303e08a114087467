"""Fixtures shared by the follower tests (they live here so that pytest finds them by name), and the
test session's own config folder."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest
from followkit import MODES, ErrorLog

# `tailboard serve` remembers a generated token in $XDG_CONFIG_HOME/tailboard: the tests (and the
# servers they start as subprocesses) keep theirs in a folder of their own, never in the user's home
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="tailboard-tests-config-")


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Each follower test runs with inotify and with polling."""
    return str(request.param)


@pytest.fixture
def no_errors() -> Iterator[None]:
    """No store call may raise and no batch may fail (follower test modules make it autouse)."""
    with ErrorLog() as log:
        yield
    assert log.messages == []
