"""edudet: the building blocks of object detectors, readable, exact and fast.

NumPy references with Numba, Cython and numba.cuda twins for box ops, NMS, anchors, matching,
RoIAlign/RoIPool and FPN level mapping, plus NumPy forward passes of torchvision's detectors.
Importing edudet compiles nothing: kernels load on first use.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it; imported on first use so `import edudet` stays fast
_EXPORTS = {
    "BoxCoder": "box_coder",
    "distance2bbox": "box_coder",
    "bbox2distance": "box_coder",
    "centerness_target": "box_coder",
    "LevelMapper": "level_mapper",
    "map_roi_levels": "level_mapper",
    "infer_scale": "level_mapper",
    "infer_stride": "level_mapper",
    "check_strides": "level_mapper",
    "check_feature_shapes": "level_mapper",
    "AnchorGenerator": "anchors",
    "grid_points": "anchors",
    "RotatedAnchorGenerator": "rotated_anchors",
    "DefaultBoxGenerator": "priors",
    "YOLOAnchorGenerator": "priors",
    "MlvlPointGenerator": "priors",
    "valid_flags": "priors",
    "Matcher": "matcher",
    "rpn_background_matches": "matcher",
    "BalancedPositiveNegativeSampler": "sampler",
    "rpn_targets": "targets",
    "roi_head_targets": "targets",
    "fcos_targets": "targets",
    "MultiScaleRoIAlign": "poolers",
    "roi_grid_to_image": "poolers",
    "available_backends": "_dispatch",
    "backends_for": "_dispatch",
}

__all__ = ["ops", "__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in ("ops", "models", "viz", "data", "eval", "testing"):
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edudet' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
