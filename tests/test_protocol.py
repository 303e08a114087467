"""Wire messages against the fixtures that the viewer's JS tests read too (tests/fixtures/protocol)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tailboard.sidecar import protocol as P
from tailboard.sidecar.series import Series

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "protocol"


def s(steps: list[float], values: list[float], times: list[float], **kw: object) -> Series:
    a = np.asarray
    return Series(a(steps, float), a(values, float), a(times, float), total=len(steps), **kw)  # type: ignore[arg-type]


BUILT = {
    "hello": P.hello("tailboard 0.1.0", 15.0),
    "snapshot": P.snapshot("lr_0.1/seed0", "c1", {"train/loss": s([0, 1, 2], [2.5, math.nan, math.inf], [10.0, 11.0, 12.5])}),
    "delta": P.delta("lr_0.1/seed0", "c2", {"train/loss": s([3], [-math.inf], [13.0]), "eval/acc": s([3], [0.5], [13.0])}),
    "reset": P.reset("lr_0.1/seed0", "truncated"),
    "error": P.error("unknown op"),
}


@pytest.mark.parametrize("name", sorted(BUILT))
def test_messages_match_the_shared_fixtures(name: str) -> None:
    encoded = json.loads(P.dumps(BUILT[name]))  # strict JSON: no NaN tokens
    fixture = json.loads((FIXTURES / f"{name}.json").read_text())
    assert encoded == fixture


def test_client_messages_are_validated() -> None:
    op, sub = P.parse_client(b'{"op":"subscribe","runs":["a"],"points":500,"cursors":{"a":"c"}}')
    assert op == "subscribe" and sub.runs == ["a"] and sub.points == 500 and sub.cursors == {"a": "c"}
    for bad, why in [
        (b"[]", "object"),
        (b"{nope", "JSON"),
        (b'{"op":"subscribe","runs":"a"}', "runs"),
        (b'{"op":"subscribe","runs":["a"],"points":2}', "points"),
        (b'{"op":"subscribe","runs":["a"],"cursors":{"a":1}}', "cursors"),
        (b'{"op":"drop tables"}', "unknown op"),
        (b"x" * (P.MAX_CLIENT_MESSAGE + 1), "too large"),
    ]:
        with pytest.raises(P.ProtocolError, match=why):
            P.parse_client(bad)


def test_steps_beyond_exact_integers_are_sent_as_the_floats_they_are() -> None:
    def sent(steps: list[float]) -> list[object]:
        arr = np.asarray(steps, np.float64)
        s = Series(arr, np.zeros_like(arr), np.zeros_like(arr), False, len(steps))
        return json.loads(P.dumps(P.delta("r", "c", {"m": s})))["series"]["m"]["steps"]  # type: ignore[no-any-return]

    assert sent([-1e300, 0.0, 3.0]) == [-1e300, 0.0, 3.0]  # was -9223372036854775808
    assert sent([2.0**60, 2.0**61]) == [2.0**60, 2.0**61]
    assert sent([1.0, 2.0, 2.0**53]) == [1, 2, 2**53]
    assert all(type(x) is int for x in sent([1.0, 2.0]))
