"""Alerts: rules evaluated in the sidecar as records arrive, and where their alerts go (docs/alerts.md).

Modules, one job each: ``config`` (thresholds, and how they are set), ``book`` (the alerts, active
and recent, and who hears of a change), ``runs`` (the rules about a run's values and life), ``gpus``
(the rules about GPUs), ``engine`` (the store listener and the thread the rules run in),
``webhooks`` (sending alerts out).
"""

from __future__ import annotations

from .book import CLEARED, FIRED, Alert, AlertBook, Change
from .config import LEVELS, RULES, AlertConfig, load_config
from .engine import AlertEngine
from .webhooks import Webhooks

__all__ = [
    "CLEARED",
    "FIRED",
    "LEVELS",
    "RULES",
    "Alert",
    "AlertBook",
    "AlertConfig",
    "AlertEngine",
    "Change",
    "Webhooks",
    "load_config",
]
