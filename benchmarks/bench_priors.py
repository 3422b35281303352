"""Priors of other detector families against torchvision: SSD300's default boxes.

torchvision's ``DefaultBoxGenerator`` on SSD300 VGG16's six feature maps (8,732 boxes of a 300 x 300 image),
against edudet's NumPy `DefaultBoxGenerator` (the same boxes, bit for bit). The YOLO anchors and
mmdetection-style points have no torchvision counterpart; they are timed alone for reference.
"""
from __future__ import annotations

from harness import Case, torch_and_torchvision

from edudet.priors import (YOLOV3_BASE_SIZES, YOLOV3_STRIDES, DefaultBoxGenerator, MlvlPointGenerator,
                           YOLOAnchorGenerator)

SSD300 = dict(aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]],
              scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05], steps=[8, 16, 32, 64, 100, 300])
SSD300_SHAPES = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]


def cases(quick: bool):
    torch, _ = torch_and_torchvision()
    generator = DefaultBoxGenerator(**SSD300)
    tv_boxes = None
    if torch is not None:
        from torchvision.models.detection.anchor_utils import DefaultBoxGenerator as TvDefaultBoxGenerator
        from torchvision.models.detection.image_list import ImageList

        tv_generator = TvDefaultBoxGenerator(**SSD300)
        images = ImageList(torch.zeros(1, 3, 300, 300), [(300, 300)])
        maps = [torch.zeros(1, 1, h, w) for h, w in SSD300_SHAPES]

        def tv_boxes():
            return tv_generator(images, maps)

    yield Case("DefaultBoxGenerator", "SSD300, 6 maps, 8,732 boxes",
               edudet={"numpy": lambda: generator((300, 300), SSD300_SHAPES)}, torchvision=tv_boxes)

    size = 416 if quick else 640
    yolo = YOLOAnchorGenerator(YOLOV3_STRIDES, YOLOV3_BASE_SIZES)
    yolo_shapes = [(size // s, size // s) for s in YOLOV3_STRIDES]
    yield Case("YOLOAnchorGenerator", f"{size}x{size}, strides 8/16/32 x 3 anchors",
               edudet={"numpy": lambda: yolo(yolo_shapes)},
               notes="mmdetection's YOLOAnchorGenerator; no torchvision op")
    points = MlvlPointGenerator([12, 24, 48])
    point_shapes = [(-(-size // s), -(-size // s)) for s in (12, 24, 48)]
    yield Case("MlvlPointGenerator", f"{size}x{size}, strides 12/24/48, with_stride",
               edudet={"numpy": lambda: points(point_shapes, with_stride=True)},
               notes="mmdetection's MlvlPointGenerator; no torchvision op")
