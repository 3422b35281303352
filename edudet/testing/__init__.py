"""edudet.testing: tools for people who test their own detection code (NMS, RoIAlign, box coders, matchers).

- Oracles (NumPy only): `assert_nms_equal`, `assert_roi_align_close`, `assert_boxes_close`,
  `assert_matches_equal` compare your result with edudet's reference (which matches torchvision) and
  explain the first disagreement in words.
- `edudet.testing.strategies` (needs hypothesis: ``pip install "edudet[testing]"``): hypothesis strategies
  for valid and nasty detection data, imported on first use so that this package never needs hypothesis.
- `edudet.testing.plugin`: a pytest plugin, registered by ``pip install edudet`` (entry point ``pytest11``):
  the ``--edudet-extreme`` option, fixtures, and the ``edudet_backends`` marker.

``import edudet`` does not import this package; this package does not import hypothesis or pytest.
"""
from __future__ import annotations

import importlib

# public name -> submodule; imported on first use, so that the pytest plugin (loaded in every pytest run)
# imports neither numpy nor hypothesis through this package
_EXPORTS = {
    "assert_nms_equal": "oracles",
    "assert_roi_align_close": "oracles",
    "assert_boxes_close": "oracles",
    "assert_matches_equal": "oracles",
    "extreme_default": "_config",
    "set_extreme_default": "_config",
}

__all__ = [*_EXPORTS, "strategies"]


def __getattr__(name: str):
    if name in ("strategies", "oracles", "plugin"):  # strategies needs hypothesis: imported only when asked for
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edudet.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
