"""edudet.ops: detection ops with torchvision's names, argument order and semantics, NumPy in and out.

Every op with fast twins takes ``backend=None`` (the fastest usable CPU backend) or one of
`available_backends()`: ``"numpy"`` (the readable reference), ``"numba"``, ``"cython"``, ``"cuda"``.
"""
from __future__ import annotations

from .._dispatch import available_backends
from .boxes import (
    box_area,
    box_convert,
    box_iou,
    clip_boxes_to_image,
    generalized_box_iou,
    masks_to_boxes,
    remove_small_boxes,
)
from .iou_variants import bbox_overlaps, box_ioa, complete_box_iou, distance_box_iou
from .masks import paste_masks_in_image
# modules named like their function (as in torchvision): these imports rebind `ops.nms` etc. to the function
from .nms import batched_nms, nms, nms_match, soft_nms
from .roi_align import roi_align
from .roi_pool import roi_pool
from .rotated import (
    batched_nms_rotated,
    box_iou_rotated,
    nms_rotated,
    rotated_box_corners,
    rotated_boxes_from_mmcv,
    rotated_boxes_to_mmcv,
)
from .rotated_box_coder import RotatedBoxCoder
from .roi_align_rotated import roi_align_rotated

__all__ = [
    "available_backends",
    "box_area",
    "box_iou",
    "generalized_box_iou",
    "distance_box_iou",
    "complete_box_iou",
    "box_ioa",
    "bbox_overlaps",
    "box_convert",
    "clip_boxes_to_image",
    "remove_small_boxes",
    "masks_to_boxes",
    "nms",
    "batched_nms",
    "soft_nms",
    "nms_match",
    "roi_align",
    "roi_pool",
    "paste_masks_in_image",
    "box_iou_rotated",
    "nms_rotated",
    "batched_nms_rotated",
    "rotated_box_corners",
    "rotated_boxes_from_mmcv",
    "rotated_boxes_to_mmcv",
    "RotatedBoxCoder",
    "roi_align_rotated",
]
