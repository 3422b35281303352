"""edudet.ops: detection ops with torchvision's names, argument order and semantics, NumPy in and out.

Every op with fast twins takes ``backend=None`` (the fastest usable CPU backend) or one of
`available_backends()`: ``"numpy"`` (the readable reference), ``"numba"``, ``"cython"``, ``"cuda"``.
"""
from __future__ import annotations

import importlib

from .._dispatch import available_backends

# public name -> module (inside edudet.ops) that defines it; imported on first use
_EXPORTS = {
    "box_area": "boxes",
    "box_iou": "boxes",
    "generalized_box_iou": "boxes",
    "box_convert": "boxes",
    "clip_boxes_to_image": "boxes",
    "remove_small_boxes": "boxes",
    "nms": "nms",
    "batched_nms": "nms",
    "soft_nms": "nms",
    "roi_align": "roi_align",
    "roi_pool": "roi_pool",
    "paste_masks_in_image": "masks",
}

__all__ = ["available_backends", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edudet.ops' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
