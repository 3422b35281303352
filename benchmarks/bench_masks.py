"""paste_masks_in_image against torchvision's (CPU): Mask R-CNN's last step, 28 x 28 masks into an 800 x 1216 image.

Boxes random in the image, sides 8..400 px (as bench_roi's). Every backend gives torchvision's bits; the
NumPy reference (a loop over masks, made to be read) is timed too: it takes under a second.
"""
from __future__ import annotations

import numpy as np
from harness import Case

from edudet.ops.masks import _paste_masks, paste_masks_in_image

IMAGE_SHAPE = (800, 1216)


def workload(num_masks: int, seed: int = 0, size: int = 28):
    """(masks (K, 1, size, size) float32, boxes (K, 4) float32) in an IMAGE_SHAPE image."""
    rng = np.random.default_rng(seed)
    masks = rng.uniform(0, 1, (num_masks, 1, size, size)).astype(np.float32)
    wh = rng.uniform(8, 400, (num_masks, 2))
    xy = rng.uniform(0, 1, (num_masks, 2)) * (np.array(IMAGE_SHAPE[::-1]) - wh)
    return masks, np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


def cases(quick: bool):
    from torchvision.models.detection.roi_heads import paste_masks_in_image as tv_paste
    import torch

    for num_masks in ((20,) if quick else (100, 300)):
        masks, boxes = workload(num_masks)
        masks_t, boxes_t = torch.from_numpy(masks), torch.from_numpy(boxes)

        def run(backend, masks=masks, boxes=boxes):
            return lambda: paste_masks_in_image(masks, boxes, IMAGE_SHAPE, backend=backend)

        yield Case("paste_masks_in_image", f"{num_masks} masks 28x28 -> {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]}",
                   edudet={b: run(b) for b in _paste_masks.backends if b != "cuda"},
                   torchvision=lambda m=masks_t, b=boxes_t: tv_paste(m, b, IMAGE_SHAPE))
