"""The wall clock of foreign records over whole columns: ``format.absolute_time``, vectorised.

``format.absolute_time`` is the one rule for a value of a time field that another program wrote: a
plausible number of Unix seconds or milliseconds (``format.UNIX_SECONDS``, ``UNIX_MILLISECONDS``),
or an ISO 8601 date-time of the same years; anything else (a duration, text) is no wall clock. The
readers that hold a column of numbers (JSON lines, CSV) apply it here in a few numpy passes; a
string goes through ``format.absolute_time`` itself, one value at a time.
"""

from __future__ import annotations

import numpy as np
from tailboard.format import UNIX_MILLISECONDS, UNIX_SECONDS

__all__ = ["absolute_times"]


def absolute_times(values: np.ndarray, has: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The Unix seconds each number of a column stands for where ``has`` and it is a plausible
    absolute time; elsewhere ``out``'s value (NaN when ``out`` is None). ``out`` is filled in place."""
    t = np.full(values.shape, np.nan) if out is None else out
    secs = has & (values >= UNIX_SECONDS[0]) & (values < UNIX_SECONDS[1])
    ms = has & (values >= UNIX_MILLISECONDS[0]) & (values < UNIX_MILLISECONDS[1])
    t[secs] = values[secs]
    t[ms] = values[ms] / 1000.0
    return t

