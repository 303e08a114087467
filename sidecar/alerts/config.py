"""The alert rules' thresholds, and how an operator sets them: ``serve --alert KEY=VALUE`` (repeatable)
or ``--alerts-config FILE`` (a JSON object of the same keys), the flags winning over the file.

A key is a threshold (``spike_factor=5``) or a rule's name with ``on`` / ``off`` (``spike=off``).
Unknown keys and values of the wrong type are refused with a message that names them: a typo in a
threshold must not leave a rule silently at its default.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LEVELS", "RULES", "AlertConfig", "load_config", "parse_assignment"]

#: Every rule, by name (docs/alerts.md says what each watches).
RULES = (
    "nonfinite", "spike", "stall", "run_failed", "trainer",
    "gpu_idle", "gpu_memory", "gpu_throttle", "gpu_ecc",
)
#: Alert levels, least to most urgent (the writer's ``ALERT_LEVELS``).
LEVELS = ("info", "warning", "error")

_ON = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False, "0": False}


@dataclass(frozen=True)
class AlertConfig:
    """Thresholds of the rules; ``off`` holds the names of the rules switched off."""

    #: spike: a value whose magnitude is over ``spike_factor`` times the magnitude of the median of
    #: the metric's previous ``spike_window`` finite values (once it has ``spike_min_points``)
    spike_factor: float = 10.0
    spike_window: int = 50
    spike_min_points: int = 10
    #: which metrics are watched for spikes (a regular expression searched in the name): losses and
    #: gradient norms; a learning rate's warm-up or a counter would be "spikes" too
    spike_metrics: str = r"(?i)loss|grad"
    #: stall: no record for ``stall_factor`` times the run's typical interval between records, and
    #: at least ``stall_min`` seconds
    stall_factor: float = 10.0
    stall_min: float = 60.0
    #: GPU idle: utilisation under ``gpu_idle_util`` percent for ``gpu_idle_for`` seconds while a
    #: running run uses the GPU
    gpu_idle_util: float = 5.0
    gpu_idle_for: float = 120.0
    #: GPU memory: used over ``gpu_memory_used`` of the total (cleared 2 points below it)
    gpu_memory_used: float = 0.95
    #: throttling: NVML's clocks event reasons that count (hardware slowdown, software and hardware
    #: thermal slowdown, hardware power brake; not the software power cap of a busy GPU)
    gpu_throttle_mask: int = 0x08 | 0x20 | 0x40 | 0x80
    off: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        unknown = set(self.off) - set(RULES)
        if unknown:
            raise ValueError(f"unknown alert rule {min(unknown)!r} (rules: {', '.join(RULES)})")
        for name in ("spike_factor", "stall_factor"):
            if not getattr(self, name) > 1:
                raise ValueError(f"{name} must be more than 1")
        if not 2 <= self.spike_min_points <= self.spike_window <= 10_000:
            raise ValueError("spike_min_points and spike_window must satisfy 2 <= min_points <= window <= 10000")
        if not 0 < self.gpu_memory_used <= 1:
            raise ValueError("gpu_memory_used is a fraction of the total, from 0 to 1")
        if self.stall_min < 0 or self.gpu_idle_for < 0 or not 0 <= self.gpu_idle_util <= 100:
            raise ValueError("stall_min and gpu_idle_for are seconds >= 0, gpu_idle_util a percentage")
        try:
            re.compile(self.spike_metrics)
        except re.error as e:
            raise ValueError(f"spike_metrics is not a regular expression: {e}") from None

    def enabled(self, rule: str) -> bool:
        return rule not in self.off

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "off"}
        out["rules"] = {rule: rule not in self.off for rule in RULES}
        return out

    def with_values(self, values: Mapping[str, Any]) -> AlertConfig:
        """This config with ``values`` applied (keys as in the module docstring; a value may be the
        text given on the command line). ValueError names a bad key or value."""
        changes: dict[str, Any] = {}
        off = set(self.off)
        types = {f.name: f.type for f in dataclasses.fields(self) if f.name != "off"}
        for raw_key, value in values.items():
            key = str(raw_key).strip().replace("-", "_")
            if key in RULES:
                on = _ON.get(str(value).strip().lower()) if not isinstance(value, bool) else value
                if on is None:
                    raise ValueError(f"alert rule {key}: 'on' or 'off', not {value!r}")
                (off.discard if on else off.add)(key)
            elif key in types:
                changes[key] = _typed(key, types[key], value)
            else:
                raise ValueError(f"unknown alert setting {raw_key!r} (thresholds: {', '.join(types)}; "
                                 f"rules, on or off: {', '.join(RULES)})")
        return dataclasses.replace(self, off=frozenset(off), **changes)


def _typed(key: str, kind: Any, value: Any) -> Any:
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if kind == "int":
            if isinstance(value, str):
                return int(value, 0)  # 0xE8 as well as 232
            if type(value) is not int:
                raise ValueError
            return value
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
            return number
        if not isinstance(value, str):
            raise TypeError
        return value
    except (TypeError, ValueError):
        raise ValueError(f"alert setting {key}: not a valid {kind}: {value!r}") from None


def parse_assignment(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` of ``--alert``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--alert takes KEY=VALUE (e.g. spike_factor=5, stall=off), not {text!r}")
    return key.strip(), value.strip()


def load_config(path: str | None = None, assignments: Iterable[str] = ()) -> AlertConfig:
    """The config of a JSON file (an object of settings), then of ``--alert`` assignments."""
    config = AlertConfig()
    if path is not None:
        try:
            with open(path, "rb") as f:
                values = json.load(f)
        except OSError as e:
            raise ValueError(f"cannot read the alerts config {path}: {e.strerror or e}") from None
        except ValueError as e:
            raise ValueError(f"the alerts config {path} is not JSON: {e}") from None
        if not isinstance(values, dict):
            raise ValueError(f"the alerts config {path} must be a JSON object of settings")
        config = config.with_values(values)
    pairs = dict(parse_assignment(a) for a in assignments)
    return config.with_values(pairs) if pairs else config
