"""Fixtures shared by the follower tests (they live here so that pytest finds them by name), and the
test session's own config folder."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest
from followkit import MODES, ErrorLog
from hypothesis import settings

# Property tests: `make test` draws each test's examples from a seed of its own (derandomize), the
# same cases on every machine with the pinned Hypothesis, so that a red run means a changed
# behaviour, not a rare case met by chance; `make fuzz` draws fresh random cases to find those.
settings.register_profile("fixed", derandomize=True, database=None)
settings.register_profile("fuzz", derandomize=False)
settings.load_profile(os.environ.get("TAILBOARD_HYPOTHESIS", "fixed"))

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
