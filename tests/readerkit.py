"""What the reader tests share: points kept the way the store keeps a parsed chunk."""

from __future__ import annotations

import math
from typing import Any

from tailboard.sidecar.ingest import Parsed

#: metric -> [(step, value or "nan")]: comparable with ==, NaN included
Points = dict[str, list[tuple[float, Any]]]


def keep(attempts: list[Points], parsed: Parsed) -> None:
    """As the store keeps a chunk: its first segment continues the last attempt, others are new."""
    for i, seg in enumerate(parsed.segments):
        if i:
            attempts.append({})
        for name, (steps, values, _) in seg.items():
            attempts[-1].setdefault(name, []).extend(
                (float(s), "nan" if math.isnan(v) else float(v)) for s, v in zip(steps, values))
