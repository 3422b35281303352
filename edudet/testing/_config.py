"""Session-wide defaults of edudet.testing's strategies: plain Python, no hypothesis, cheap to import.

The pytest plugin sets them from its command-line options; the strategies read them each time they draw,
so a strategy built at import time (``@given(strategies.boxes())``) still follows ``--edudet-extreme``.
"""
from __future__ import annotations

import os

_TRUE = ("1", "true", "yes", "on")

# extreme=None in a strategy means this: False unless `pytest --edudet-extreme` or EDUDET_EXTREME=1
_extreme = os.environ.get("EDUDET_EXTREME", "").strip().lower() in _TRUE


def extreme_default() -> bool:
    """What ``extreme=None`` means right now."""
    return _extreme


def set_extreme_default(flag: bool) -> None:
    """Make ``extreme=None`` mean `flag` (the pytest plugin calls this for ``--edudet-extreme``)."""
    global _extreme
    if not isinstance(flag, bool):
        raise TypeError(f"flag must be a bool, got {type(flag).__name__}")
    _extreme = flag
