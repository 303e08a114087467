"""Fixtures shared by the follower tests (they live here so that pytest finds them by name)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from followkit import MODES, ErrorLog


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
