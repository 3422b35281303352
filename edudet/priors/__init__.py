"""Priors of other detector families: the default boxes, anchors and points their heads predict from.

Each family spreads reference boxes (or points) over every feature map, one set per grid location, and its
head's outputs are flattened in the same order: level by level, location by location (row-major: y outer,
x inner), then the priors of one location. They differ in where a location's centre sits and how the
boxes are sized:

- `DefaultBoxGenerator` (``ssd``): SSD's default boxes (Liu et al., 2016), sized as fractions of the image,
  centred at ``(j + 0.5) / f_k`` of it; torchvision's ``DefaultBoxGenerator`` exactly.
- `YOLOAnchorGenerator` (``yolo``): YOLOv3/v5 anchors, fixed ``(w, h)`` pixel sizes per level, centred at
  ``(j + 0.5) * stride``; mmdetection's ``YOLOAnchorGenerator`` exactly, for any integer stride.
- `MlvlPointGenerator` (``points``): one point per location at ``(j + offset) * stride`` (FCOS, ATSS,
  YOLOX, RTMDet); mmdetection's ``MlvlPointGenerator`` exactly, for any integer stride.
- `valid_flags` (``grid``): which locations (and their priors) lie inside an image's own padded region when
  it was batched with larger images; mmdetection's ``valid_flags``.

edudet's own `AnchorGenerator` (``edudet.anchors``) is torchvision's Faster R-CNN / RetinaNet generator.
"""
from .grid import valid_flags
from .points import MlvlPointGenerator
from .ssd import DefaultBoxGenerator
from .yolo import YOLOV3_BASE_SIZES, YOLOV3_STRIDES, YOLOAnchorGenerator

__all__ = ["DefaultBoxGenerator", "YOLOAnchorGenerator", "MlvlPointGenerator", "valid_flags",
           "YOLOV3_BASE_SIZES", "YOLOV3_STRIDES"]
