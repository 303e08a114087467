"""Record kinds (sidecar/store/kinds.py): each is a kind of the format; histograms keep their bins' edges when those are bounds,
refuse the record when they are not, and /api/histograms serves them, one per record."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from tailboard.sidecar.server import ServerHandle, serve_in_thread
from tailboard.sidecar.store.kinds import BAD_EDGES, KINDS

TOKEN = "tok"
HEADER = {"k": "header", "format": "tailboard", "version": 1, "pid": 1, "start": 1700000000.0}


def hist(step: int, **fields: Any) -> dict[str, Any]:
    return {"k": "hist", "step": step, "t": 1700000000.0 + step, "name": "w", "lo": 0.0, "hi": 10.0, **fields}


GOOD = [
    hist(0, counts=[10, 5, 8]),  # the writer's: equal-width bins between lo and hi
    hist(1, counts=[10, 5, 8], edges=[0.0, 1.0, 2, 10.0]),  # an int among the floats is a number
    hist(2, counts=[4, 1], edges=[0.0, 0.0, 3.0]),  # a bin of width zero (a constant tensor's)
    hist(3, counts=[], edges=[]),  # an empty histogram
    hist(4, counts=[1], edges=None),  # JSON null: no edges
    hist(5, counts=[], edges=[0.5]),  # no bins, and the one bound that makes
]
BAD = [
    hist(10, counts=[1, 2], edges=[0.0, 1.0]),  # one edge short
    hist(11, counts=[1, 2], edges=[0.0, 1.0, 2.0, 3.0]),  # one too many
    hist(12, counts=[1, 2], edges=[0.0, 2.0, 1.0]),  # going back
    hist(13, counts=[1, 2], edges=[0.0, 1.0, "Infinity"]),  # not finite (as the writer spells it)
    hist(14, counts=[1, 2], edges=[0.0, math.nan, 2.0]),
    hist(15, counts=[1, 2], edges=[0.0, True, 2.0]),  # a boolean is not a number here
    hist(16, counts=[1, 2], edges=[0.0, "1", 2.0]),
    hist(17, counts=[1, 2], edges=[0.0, 1.0, 10**400]),  # past the largest float (read as inf)
    hist(18, counts=[1, 2], edges={"0": 0.0}),
    hist(19, counts="12", edges=[0.0, 1.0, 2.0]),
]


def test_every_kind_the_store_keeps_is_a_kind_of_the_format() -> None:
    """A record the store can keep is one the format defines (docs/format.md), so the chunk parser
    keeps it as a record of its attempt instead of reading its numbers as metrics."""
    from tailboard import format as fmt
    from tailboard.sidecar.ingest import parse_chunk

    assert set(KINDS) <= fmt.KINDS and fmt.K_IMAGE in KINDS
    for kind in KINDS:
        line = json.dumps({"k": kind, "step": 3, "t": 1700000003.0, "name": "x", "w": 1, "h": 1, "c": 1}).encode()
        got = parse_chunk(line + b"\n", prev_step=None, next_index=0, attempt_started=False, now=1.0)
        assert got.segments == [{}] and [rec["k"] for _, rec in got.others] == [kind], kind
        assert got.last_step == 3.0 and got.started, kind


def test_histograms_keep_valid_edges_and_refuse_records_whose_edges_are_not_bounds() -> None:
    kind = KINDS["hist"]
    held = kind.new()
    assert [kind.keep(held, rec, "") for rec in GOOD] == [None] * len(GOOD)
    assert [kind.keep(held, rec, "") for rec in BAD] == [BAD_EDGES] * len(BAD)
    answer = kind.answer(held, "w")
    assert answer["total"] == len(GOOD) and answer["steps"] == [0, 1, 2, 3, 4, 5]
    assert answer["edges"] == [None, [0.0, 1.0, 2, 10.0], [0.0, 0.0, 3.0], [], None, [0.5]]
    assert answer["counts"][1] == [10, 5, 8]


def test_thinned_and_latest_answers_keep_each_record_with_its_edges() -> None:
    kind = KINDS["hist"]
    held = kind.new()
    for s in range(100):
        assert kind.keep(held, hist(s, counts=[1, 2], edges=[0.0, float(s), 200.0]), "@rank1") is None
    thinned = kind.answer(held, "w@rank1", limit=5)
    assert thinned["total"] == 100
    assert [e[1] for e in thinned["edges"]] == thinned["steps"] and thinned["steps"][-1] == 99
    assert kind.answer(held, "w@rank1", step=41.5)["edges"] == [[0.0, 41.0, 200.0]]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerHandle, Path]]:
    run = tmp_path / "tb" / "run1"
    run.mkdir(parents=True)
    lines = [HEADER, *GOOD, *BAD, {"k": "scalars", "step": 30, "t": 1700000030.0, "v": {"loss": 1.0}}]
    (run / "rank0.jsonl").write_text("".join(json.dumps(r, allow_nan=True) + "\n" for r in lines))
    handle = serve_in_thread(tmp_path, token=TOKEN, follower_options={"poll_interval": 0.05})
    yield handle, run
    handle.stop()


def get(handle: ServerHandle, path: str, **params: Any) -> dict[str, Any]:
    """An answer of the API, once the run is there (the backlog is read in the background)."""
    deadline = time.monotonic() + 10
    while True:
        r = httpx.get(handle.base_url + path, params=params, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        if r.status_code == 200 or time.monotonic() > deadline:
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body
        time.sleep(0.05)


def test_api_histograms_serves_the_edges_of_each_record(served: Any) -> None:
    handle, _ = served
    body = get(handle, "/api/histograms", run="tb/run1", name="w")
    assert body["steps"] == [0, 1, 2, 3, 4, 5]
    assert body["edges"] == [None, [0.0, 1.0, 2, 10.0], [0.0, 0.0, 3.0], [], None, [0.5]]
    assert body["lo"] == [0.0] * 6 and body["counts"][2] == [4, 1]


def test_a_torch_histogram_is_served_with_its_buckets_true_edges(tmp_path: Path) -> None:
    """torch's add_histogram writes TensorBoard's unequal buckets; the edges served are theirs, as
    TensorBoard's own reader gives them (empty outer buckets dropped, min and max as the ends)."""
    np = pytest.importorskip("numpy")
    tb = pytest.importorskip("torch.utils.tensorboard")
    values = np.concatenate([np.linspace(-1.0, -0.5, 50), np.linspace(2.0, 3.0, 30)])
    with tb.SummaryWriter(str(tmp_path / "torchrun")) as w:
        w.add_histogram("acts", values, global_step=7, bins="tensorflow")
        w.add_scalar("loss", 1.0, 7)
    handle = serve_in_thread(tmp_path, token=TOKEN, follower_options={"poll_interval": 0.05})
    try:
        body = get(handle, "/api/histograms", run="torchrun", name="acts")
    finally:
        handle.stop()
    assert body["steps"] == [7]
    edges, counts = body["edges"][0], body["counts"][0]
    assert len(edges) == len(counts) + 1 and sum(counts) == len(values)
    assert edges[0] == pytest.approx(-1.0) and edges[-1] == pytest.approx(3.0)
    assert all(a <= b for a, b in pairwise(edges))
    widths = [b - a for a, b in pairwise(edges)]
    assert max(widths) > 2 * min(w for w in widths if w > 0)  # not equal-width bins


def test_records_refused_for_their_edges_are_counted_as_skipped(served: Any) -> None:
    handle, _ = served
    get(handle, "/api/histograms", run="tb/run1", name="w")  # the run is read
    info = get(handle, "/api/run", run="tb/run1")
    assert info["skipped"] == {"total": len(BAD), BAD_EDGES: len(BAD)}


def test_records_of_a_step_with_no_place_on_an_axis_are_counted_as_skipped(tmp_path: Path) -> None:
    """A histogram, vector or text record whose step is NaN, +-Infinity, past float range or not a
    number at all is not served (the viewer places each at its step): counted as ``bad_step``."""
    run = tmp_path / "run"
    run.mkdir()
    good = [hist(0, counts=[1, 2]), {"k": "vector", "step": 1, "t": 1.7e9, "name": "g", "v": [1.0, 2.0]},
            {"k": "text", "step": 2, "t": 1.7e9, "name": "note", "text": "hi"}]
    lines = [json.dumps(HEADER)] + [json.dumps(r) for r in good]
    lines += ['{"k":"hist","step":NaN,"t":1.7e9,"name":"w","lo":0.0,"hi":1.0,"counts":[1]}',
              '{"k":"hist","step":1e400,"t":1.7e9,"name":"w","lo":0.0,"hi":1.0,"counts":[1]}',
              '{"k":"vector","step":"Infinity","t":1.7e9,"name":"g","v":[1.0]}',
              '{"k":"vector","step":true,"t":1.7e9,"name":"g","v":[1.0]}',
              '{"k":"text","step":"3","t":1.7e9,"name":"note","text":"no"}']
    (run / "rank0.jsonl").write_text("\n".join(lines) + "\n")
    handle = serve_in_thread(tmp_path, token=TOKEN, follower_options={"poll_interval": 0.05})
    try:
        assert get(handle, "/api/histograms", run="run", name="w")["steps"] == [0]
        assert get(handle, "/api/vectors", run="run", name="g")["steps"] == [1]
        # the latest at or before a step: the one at 1 for step 5, none for step 0.5
        assert get(handle, "/api/vectors", run="run", name="g", step=5)["steps"] == [1]
        assert get(handle, "/api/vectors", run="run", name="g", step=0.5)["steps"] == []
        assert get(handle, "/api/texts", run="run", name="note")["steps"] == [2]
        assert get(handle, "/api/run", run="run")["skipped"] == {"total": 5, "bad_step": 5}
    finally:
        handle.stop()
