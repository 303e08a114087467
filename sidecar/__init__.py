"""tailboard's sidecar: follows a log tree and serves it to the viewer."""

from __future__ import annotations
