"""RoIAlign and RoIPool against torchvision CPU: Faster/Mask R-CNN head workloads.

Boxes: random in an 800 x 1088 image, sides 8..400 px, on a 2 x 256 x 200 x 272 map (P2, spatial_scale 1/4).
The NumPy reference (a loop over RoIs, made to be read) is timed only in ``--quick`` runs: on the full
workloads it takes minutes.
"""
from __future__ import annotations

import importlib

import numpy as np
from harness import Case

from edudet import ops

# look the public functions up first: importing a submodule named like its function before that would
# leave `edudet.ops.roi_align` pointing at the module
ops.roi_align, ops.roi_pool
_roi_align = importlib.import_module("edudet.ops.roi_align")._roi_align
_roi_pool = importlib.import_module("edudet.ops.roi_pool")._roi_pool


def _workload(rng, num_images, channels, height, width, num_boxes, image_hw=(800, 1088)):
    features = rng.standard_normal((num_images, channels, height, width)).astype(np.float32)
    wh = rng.uniform(8, 400, size=(num_boxes, 2))
    xy = rng.uniform(0, 1, size=(num_boxes, 2)) * (np.array(image_hw[::-1]) - wh)
    batch = rng.integers(0, num_images, size=(num_boxes, 1))
    rois = np.concatenate([batch, xy, xy + wh], axis=1).astype(np.float32)
    return features, rois


def _fast(backends, quick):
    return [b for b in backends if b != "cuda" and (quick or b != "numpy")]


def cases(quick: bool):
    import torch
    import torchvision

    rng = np.random.default_rng(0)
    if quick:
        features, rois = _workload(rng, 2, 32, 100, 136, 100)
        mask_boxes = rois[:20]
    else:
        features, rois = _workload(rng, 2, 256, 200, 272, 1000)
        mask_boxes = rois[:100]
    f_t, r_t, m_t = torch.from_numpy(features), torch.from_numpy(rois), torch.from_numpy(mask_boxes)
    workload = f"{len(rois)} boxes, {'x'.join(map(str, features.shape))}"
    scale = 0.25

    def align_case(name, boxes, boxes_t, size, sampling_ratio, aligned):
        def run(backend):
            return lambda: ops.roi_align(features, boxes, size, scale, sampling_ratio, aligned, backend=backend)

        return Case(
            name, f"{len(boxes)} boxes, {'x'.join(map(str, features.shape))} -> {size}x{size}, "
                  f"sampling {sampling_ratio}, aligned={aligned}",
            edudet={b: run(b) for b in _fast(_roi_align.backends, quick)},
            torchvision=lambda: torchvision.ops.roi_align(f_t, boxes_t, size, scale, sampling_ratio, aligned),
        )

    yield align_case("roi_align", rois, r_t, 7, 2, True)
    yield align_case("roi_align", rois, r_t, 7, -1, True)
    yield align_case("roi_align (mask head)", mask_boxes, m_t, 14, 2, True)

    def pool(backend):
        return lambda: ops.roi_pool(features, rois, 7, scale, backend=backend)

    yield Case("roi_pool", f"{workload} -> 7x7",
               edudet={b: pool(b) for b in _fast(_roi_pool.backends, quick)},
               torchvision=lambda: torchvision.ops.roi_pool(f_t, r_t, 7, scale))
