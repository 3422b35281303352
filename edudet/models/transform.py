"""Getting images into a detector and boxes back out: torchvision's ``GeneralizedRCNNTransform``, in NumPy.

In: a list of images, each ``(3, H, W)`` float in [0, 1] or ``(H, W, 3)`` uint8. Each is normalised per
channel, ``(x - mean) / std``, then resized with one scale factor
``s = min(min_size / min(H, W), max_size / max(H, W))`` so the short side becomes `min_size` unless the long
side would exceed `max_size`; the new size is ``floor(H s) x floor(W s)`` and the sampling is bilinear
(``F.interpolate(scale_factor=s, recompute_scale_factor=True, align_corners=False)``), bit for bit with
PyTorch's CPU kernel as torch runs it by default on a multi-core machine (several threads; on one thread
torch rounds resizes above 128 pixels (H + W) another way: see `edudet.models.layers.interpolate_bilinear`,
whose ``single_thread=True`` gives that one). The images are then zero-padded at the bottom and right into
one ``(N, 3, H_pad, W_pad)`` batch, sides rounded up to a multiple of 32 so that every FPN level has an
integer size. An image so thin that a resized side would be
0 pixels (1 x 10000 at ``max_size`` 1333) is refused by name (torchvision's ``F.interpolate`` fails on it
too); a float image with pixels well above 1 (0-255 values not divided by 255) or below 0 (already
normalised) runs but warns, as its detections are junk. Out: boxes scaled back by
``original size / resized size`` (float32, per axis), and Mask R-CNN's ``(K, 1, 28, 28)`` masks pasted
into the original image with those boxes (`edudet.ops.paste_masks_in_image`).
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .._validate import check_scalar
from ..ops import paste_masks_in_image
from .layers import interpolate_bilinear, resize_output_size

__all__ = ["GeneralizedRCNNTransform", "as_image_list", "resize_boxes"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _as_image(image, index: int) -> np.ndarray:
    name = f"images[{index}]"
    if hasattr(image, "detach") and hasattr(image, "cpu"):  # a torch tensor
        image = image.detach().cpu().numpy()
    array = np.asarray(image)
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.floating)
                                       or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"{name} must be a float array in [0, 1] or a uint8 array, got dtype {array.dtype}")
    if array.ndim != 3:
        raise ValueError(f"{name} must be (3, H, W) float in [0, 1] or (H, W, 3) uint8, got shape {array.shape}")
    if array.dtype == np.uint8:
        if array.shape[2] != 3:
            raise ValueError(f"{name} is uint8, so it must be (H, W, 3) RGB; got shape {array.shape}")
        # the usual to-tensor conversion: HWC bytes -> CHW floats in [0, 1]
        array = np.ascontiguousarray(array.transpose(2, 0, 1)).astype(np.float32) / np.float32(255)
    elif np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} has integer dtype {array.dtype}: pass floats in [0, 1] or uint8")
    else:
        if array.shape[0] != 3:
            raise ValueError(f"{name} must have 3 channels first, (3, H, W), got shape {array.shape}")
        array = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(array).all():
            raise ValueError(f"{name} contains NaN or inf pixels")
        _warn_if_out_of_range(array, name)
    if array.shape[1] < 1 or array.shape[2] < 1:
        raise ValueError(f"{name} is empty: shape {array.shape}")
    return array


# a little slack: an image in [0, 1] that was resampled or colour-jittered may overshoot slightly
_RANGE_SLACK = 0.01


def _warn_if_out_of_range(array: np.ndarray, name: str) -> None:
    """Float images must be in [0, 1]; the two usual mistakes run without error and give junk, so warn."""
    if not array.size:
        return
    high, low = float(array.max()), float(array.min())
    if high > 1 + _RANGE_SLACK:
        warnings.warn(f"{name} is a float image with values up to {high:.4g}, but float images must be in [0, 1]: "
                      "0-255 values not divided by 255? Divide by 255, or pass the uint8 (H, W, 3) image",
                      UserWarning, stacklevel=2)
    elif low < -_RANGE_SLACK:
        warnings.warn(f"{name} is a float image with values down to {low:.4g}, but float images must be in [0, 1]: "
                      "already normalised? The model normalises itself (image_mean, image_std); pass the raw image",
                      UserWarning, stacklevel=2)


def as_image_list(images) -> list[np.ndarray]:
    """A list of clean ``(3, H, W)`` float32 images from what a user passes (list, tuple or one array)."""
    if isinstance(images, np.ndarray) or (hasattr(images, "detach") and hasattr(images, "cpu")):
        images = [images] if np.ndim(images) == 3 else list(images)
    if not isinstance(images, (list, tuple)):
        raise TypeError(f"images must be a list of (3, H, W) arrays, got {type(images).__name__}")
    if len(images) == 0:
        raise ValueError("images is an empty list: pass at least one image")
    return [_as_image(image, i) for i, image in enumerate(images)]


def resize_boxes(boxes: np.ndarray, from_size, to_size) -> np.ndarray:
    """(K, 4) boxes in an image of size `from_size` -> the same boxes in `to_size` ((H, W) pairs), float32."""
    ratio_h = np.float32(to_size[0]) / np.float32(from_size[0])
    ratio_w = np.float32(to_size[1]) / np.float32(from_size[1])
    return (boxes.astype(np.float32, copy=False) * np.array([ratio_w, ratio_h, ratio_w, ratio_h], np.float32))


class GeneralizedRCNNTransform:
    """Normalise, resize and batch images; map detections back (see the module docstring)."""

    def __init__(self, min_size: int = 800, max_size: int = 1333, image_mean=IMAGENET_MEAN,
                 image_std=IMAGENET_STD, size_divisible: int = 32):
        if isinstance(min_size, (list, tuple)) and min_size:  # torchvision takes a tuple for training; inference
            min_size = min_size[-1]                             # uses the last
        self.min_size = check_scalar(min_size, "min_size", low=1, integer=True)
        self.max_size = check_scalar(max_size, "max_size", low=1, integer=True)
        self.size_divisible = check_scalar(size_divisible, "size_divisible", low=1, integer=True)
        try:
            mean = np.asarray(image_mean, np.float64)
            std = np.asarray(image_std, np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"image_mean and image_std must be 3 numbers each, got {image_mean!r} and {image_std!r}") \
                from None
        if mean.shape != (3,) or std.shape != (3,):
            raise ValueError(f"image_mean and image_std must have 3 entries, got {mean.shape} and {std.shape}")
        if not np.isfinite(mean).all():
            raise ValueError(f"image_mean must be finite, got {image_mean}")
        if not (np.isfinite(std).all() and (std.astype(np.float32) > 0).all()):
            raise ValueError(f"image_std must be positive and finite, got {image_std}")
        self.image_mean, self.image_std = mean.astype(np.float32), std.astype(np.float32)

    def __repr__(self) -> str:
        return (f"GeneralizedRCNNTransform(min_size={self.min_size}, max_size={self.max_size}, "
                f"mean={self.image_mean.tolist()}, std={self.image_std.tolist()})")

    def normalize(self, image: np.ndarray) -> np.ndarray:
        return (image - self.image_mean[:, None, None]) / self.image_std[:, None, None]

    def scale_factor(self, height: int, width: int) -> float:
        """``min(min_size / short side, max_size / long side)``, in double precision as torchvision."""
        return min(self.min_size / min(height, width), self.max_size / max(height, width))

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        return resize_output_size(height, width, self.scale_factor(height, width))

    def resize(self, image: np.ndarray, name: str = "image") -> np.ndarray:
        size = self.resized_size(*image.shape[-2:])
        if min(size) < 1:  # a side of 0 pixels has nothing to sample (torchvision's interpolate raises too)
            raise ValueError(f"{name} of {image.shape[1]} x {image.shape[2]} pixels would be resized to {size[0]} x "
                             f"{size[1]} (scale {self.scale_factor(*image.shape[-2:]):.4g}, min_size={self.min_size}, "
                             f"max_size={self.max_size}): too thin; crop or pad it, or raise max_size")
        return interpolate_bilinear(image, size)

    def batch_images(self, images: list[np.ndarray]) -> np.ndarray:
        """Zero-pad to a common ``(N, 3, H_pad, W_pad)``, sides rounded up to a multiple of `size_divisible`."""
        stride = self.size_divisible
        height = int(math.ceil(max(i.shape[1] for i in images) / stride) * stride)
        width = int(math.ceil(max(i.shape[2] for i in images) / stride) * stride)
        batch = np.zeros((len(images), 3, height, width), np.float32)
        for slot, image in zip(batch, images):
            slot[:, : image.shape[1], : image.shape[2]] = image
        return batch

    def __call__(self, images) -> tuple[np.ndarray, list[tuple[int, int]], list[tuple[int, int]]]:
        """images -> (batch (N, 3, H_pad, W_pad), resized sizes, original sizes), sizes as (H, W)."""
        images = as_image_list(images)
        original_sizes = [(int(i.shape[1]), int(i.shape[2])) for i in images]
        resized = [self.resize(self.normalize(image), f"images[{i}]") for i, image in enumerate(images)]
        image_sizes = [(int(i.shape[1]), int(i.shape[2])) for i in resized]
        return self.batch_images(resized), image_sizes, original_sizes

    def postprocess(self, detections: list[dict], image_sizes, original_sizes) -> list[dict]:
        """Scale each result's ``boxes`` from the resized image back to the original one; paste ``masks``."""
        for result, size, original in zip(detections, image_sizes, original_sizes):
            result["boxes"] = resize_boxes(result["boxes"], size, original)
            if "masks" in result:
                result["masks"] = paste_masks_in_image(result["masks"], result["boxes"], original)
        return detections
