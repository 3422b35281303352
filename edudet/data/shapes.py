"""A generated detection data set: circles, squares and triangles on textured backgrounds, with exact targets.

`make_image(seed)` draws one image; `ShapesDataset(num_images, image_size=256, seed=0)` indexes them, image
``i`` being ``make_image((seed, i))``, so any image can be remade from its index without storing anything.

Each image is (H, W, 3) uint8 and its target follows torchvision's detection convention:
``boxes`` (K, 4) float32 xyxy, ``labels`` (K,) int64 in 1..3 (0 is the background), ``masks`` (K, H, W) uint8.

The rule: shapes are painted one over the other, in order, and each target describes what is *visible*:
the mask is the shape's pixels not covered by a later shape, and the box is the tight box of that mask in
continuous coordinates (``x1`` = first column, ``x2`` = last column + 1, likewise for rows). A shape more than
`max_hidden` hidden (by later shapes or the image border) is not painted at all, so every painted shape has a
target and every target is mostly visible.

Rasterisation is exact and NumPy only: a pixel belongs to a shape when its centre ``(x + 0.5, y + 0.5)``
is inside it (no anti-aliasing, so masks and boxes need no rounding rule).
"""
from __future__ import annotations

import numbers

import numpy as np

from .._validate import check_allocation, check_scalar

__all__ = ["CLASSES", "ShapesDataset", "make_image"]

# index = label; 0 is the background, as in torchvision's detection models
CLASSES = ("__background__", "circle", "square", "triangle")

# bright, saturated colours on a darker, greyish background keep the shapes learnable; shapes drawn one
# after the other never share a colour, so most overlaps show an edge
_PALETTE = np.array(
    [
        [230, 60, 50], [60, 200, 80], [70, 110, 240], [240, 200, 40],
        [220, 80, 220], [60, 210, 220], [250, 140, 40], [240, 240, 240],
    ],
    dtype=np.float32,
)


def make_image(seed=0, image_size: int = 256, min_objects: int = 3, max_objects: int = 12,
               max_hidden: float = 0.6):
    """One image and its target, fully determined by `seed` (an int >= 0 or a sequence of them).

    Returns (image (H, W, 3) uint8, target) with H = W = `image_size` and target a dict of ``boxes`` (K, 4)
    float32 xyxy, ``labels`` (K,) int64 in 1..3 and ``masks`` (K, H, W) uint8, in painting order (later
    objects are on top). Between `min_objects` and `max_objects` shapes are drawn, before those more than
    `max_hidden` hidden are left out, so K may be smaller than `min_objects`.
    """
    image_size = check_scalar(image_size, "image_size", low=32, integer=True)
    min_objects, max_objects = _check_object_range(min_objects, max_objects)
    max_hidden = check_scalar(max_hidden, "max_hidden", low=0.0, high=1.0, high_inclusive=False)
    rng = np.random.default_rng(_check_seed(seed))
    # the float32 canvas, and at worst one mask per drawn object: refuse sizes that cannot fit, by name
    check_allocation((image_size, image_size, 3), 4, "make_image's (image_size, image_size, 3) float32 canvas")
    check_allocation((max_objects, image_size, image_size), 1,
                     "make_image's (max_objects, image_size, image_size) masks")

    background = _background(rng, image_size)
    num_objects = int(rng.integers(min_objects, max_objects + 1))
    shapes = [_random_shape(rng, image_size) for _ in range(num_objects)]
    colours = _colours(rng, num_objects)

    kept = _visible_masks(shapes, image_size, max_hidden)  # (index into shapes, visible mask), bottom first

    image = background
    for index, visible in kept:
        image[visible] = colours[index]
    # a little sensor noise over everything, so flat colours are not a give-away
    image += rng.standard_normal(size=image.shape, dtype=np.float32) * np.float32(4.0)
    image = np.clip(np.rint(image, out=image), 0, 255, out=image).astype(np.uint8)

    masks = np.zeros((len(kept), image_size, image_size), dtype=np.uint8)
    for k, (_, visible) in enumerate(kept):
        masks[k] = visible
    target = {
        "boxes": _tight_boxes(masks),
        "labels": np.array([shapes[index][0] for index, _ in kept], dtype=np.int64),
        "masks": masks,
    }
    return image, target


class ShapesDataset:
    """`num_images` generated images of `image_size` x `image_size`; item ``i`` is ``make_image((seed, i))``.

    ``dataset[i]`` returns (image (H, W, 3) uint8, target dict of boxes/labels/masks, see `make_image`);
    negative indices count from the end, others out of range raise IndexError (so iteration stops).
    """

    CLASSES = CLASSES

    def __init__(self, num_images: int, image_size: int = 256, seed: int = 0, min_objects: int = 3,
                 max_objects: int = 12, max_hidden: float = 0.6):
        self.num_images = check_scalar(num_images, "num_images", low=0, integer=True)
        self.image_size = check_scalar(image_size, "image_size", low=32, integer=True)
        self.seed = _check_seed(seed)
        self.min_objects, self.max_objects = _check_object_range(min_objects, max_objects)
        self.max_hidden = check_scalar(max_hidden, "max_hidden", low=0.0, high=1.0, high_inclusive=False)

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index):
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, numbers.Integral):
            raise TypeError(f"index must be an integer, got {type(index).__name__}")
        index = int(index)
        if index < 0:
            index += self.num_images
        if not 0 <= index < self.num_images:
            raise IndexError(f"index out of range for a data set of {self.num_images} images")
        return make_image((self.seed, index), self.image_size, self.min_objects, self.max_objects,
                          self.max_hidden)

    def __repr__(self) -> str:
        return f"ShapesDataset(num_images={self.num_images}, image_size={self.image_size}, seed={self.seed})"


# --- drawing ------------------------------------------------------------------------------------------------

def _visible_masks(shapes: list, image_size: int, max_hidden: float) -> list:
    """[(index, visible (H, W) bool)] of the shapes that get painted, bottom first (the order of `shapes`).

    Decided from the top down: a shape is kept when enough of it shows under the kept shapes above it, so
    leaving a shape out never changes what shows of the shapes above it. The whole shape's area counts, so
    the part cut off by the image border counts as hidden.
    """
    centres = np.arange(image_size, dtype=np.float32) + np.float32(0.5)  # a pixel is in when its centre is
    x = np.broadcast_to(centres[None, :], (image_size, image_size))
    y = np.broadcast_to(centres[:, None], (image_size, image_size))
    covered = np.zeros((image_size, image_size), dtype=bool)
    kept = []
    for index in range(len(shapes) - 1, -1, -1):
        label, params = shapes[index]
        full = _rasterise(label, params, x, y)
        visible = full & ~covered
        visible_area = np.count_nonzero(visible)
        if visible_area == 0 or visible_area < (1.0 - max_hidden) * _shape_area(label, params):
            continue
        kept.append((index, visible))
        covered |= full
    return kept[::-1]


def _random_shape(rng: np.random.Generator, image_size: int):
    """(label, (cx, cy, r, angle)): r is the circumradius (a circle's radius), angle turns squares and triangles."""
    label = int(rng.integers(1, len(CLASSES)))
    # log-uniform sizes: as many small shapes as large ones, from about 8 to 100 pixels across at 256
    radius = float(np.exp(rng.uniform(np.log(0.016), np.log(0.2))) * image_size)
    cx, cy = rng.uniform(0, image_size, size=2)  # the centre is inside; the border may cut the shape
    angle = float(rng.uniform(0, 2 * np.pi))
    return label, (float(cx), float(cy), radius, angle)


def _rasterise(label: int, params, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixel centres inside the shape (only its bounding window is computed, for speed)."""
    cx, cy, radius, angle = params
    height, width = x.shape
    x0, x1 = max(int(cx - radius), 0), min(int(np.ceil(cx + radius)) + 1, width)
    y0, y1 = max(int(cy - radius), 0), min(int(np.ceil(cy + radius)) + 1, height)
    out = np.zeros((height, width), dtype=bool)
    dx, dy = x[y0:y1, x0:x1] - np.float32(cx), y[y0:y1, x0:x1] - np.float32(cy)
    if label == 1:  # circle
        out[y0:y1, x0:x1] = dx * dx + dy * dy <= np.float32(radius * radius)
        return out
    # a regular polygon is the intersection of half-planes: one per side, each at the inradius from the centre
    sides = 4 if label == 2 else 3
    inradius = np.float32(radius * np.cos(np.pi / sides))
    inside = np.ones(dx.shape, dtype=bool)
    for k in range(sides):
        normal_angle = angle + (2 * k + 1) * np.pi / sides
        inside &= dx * np.float32(np.cos(normal_angle)) + dy * np.float32(np.sin(normal_angle)) <= inradius
    out[y0:y1, x0:x1] = inside
    return out


def _shape_area(label: int, params) -> float:
    """Area of the whole shape in pixels, the part outside the image included."""
    radius = params[2]
    if label == 1:
        return float(np.pi * radius ** 2)
    sides = 4 if label == 2 else 3
    return float(0.5 * sides * radius ** 2 * np.sin(2 * np.pi / sides))


def _colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3) colours from the palette, each different from the previous one, with a little jitter."""
    picks = [int(rng.integers(len(_PALETTE)))]
    for _ in range(n - 1):
        step = int(rng.integers(1, len(_PALETTE)))  # never 0: never the colour just below
        picks.append((picks[-1] + step) % len(_PALETTE))
    jitter = rng.uniform(-20, 20, size=(n, 3)).astype(np.float32)
    return np.clip(_PALETTE[picks] + jitter, 0, 255)


def _background(rng: np.random.Generator, image_size: int) -> np.ndarray:
    """(H, W, 3) float32 texture: a dark grey-ish base, a colour gradient and soft stripes."""
    f32 = np.float32
    t = (np.arange(image_size, dtype=f32) + f32(0.5)) / f32(image_size)
    tx, ty = t[None, :], t[:, None]
    base = rng.uniform(30, 100) + rng.uniform(-15, 15, size=3)  # greyish: the channels stay close
    gradient = rng.uniform(-30, 30, size=(2, 3)).astype(f32)
    # stripes along a random direction, at a random frequency: shapes must be found on texture, not on flat paint
    direction, frequency = rng.uniform(0, 2 * np.pi), rng.uniform(2, 12)
    amplitude, phase = rng.uniform(5, 25), rng.uniform(0, 2 * np.pi)
    wave = f32(2 * np.pi * frequency) * (f32(np.cos(direction)) * tx + f32(np.sin(direction)) * ty)
    stripes = f32(amplitude) * np.sin(wave + f32(phase))  # (H, W), shared by the three channels
    image = np.empty((image_size, image_size, 3), dtype=f32)
    for channel in range(3):  # channel by channel keeps every temporary 2-D and float32
        image[..., channel] = stripes + (gradient[0, channel] * tx + gradient[1, channel] * ty + f32(base[channel]))
    return image


def _tight_boxes(masks: np.ndarray) -> np.ndarray:
    """(K, 4) float32 xyxy: first column/row of each mask's pixels, and last column/row + 1."""
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    for k, mask in enumerate(masks):
        columns = np.flatnonzero(mask.any(axis=0))
        rows = np.flatnonzero(mask.any(axis=1))
        boxes[k] = (columns[0], rows[0], columns[-1] + 1, rows[-1] + 1)
    return boxes


# --- input checks -------------------------------------------------------------------------------------------

def _check_seed(seed):
    """An int >= 0, or a tuple of them (how a data set names its images)."""
    values = seed if isinstance(seed, (tuple, list)) else (seed,)
    if len(values) == 0:
        raise ValueError("seed must be an integer >= 0 or a non-empty sequence of them")
    clean = tuple(check_scalar(v, "seed", low=0, integer=True) for v in values)
    return clean if isinstance(seed, (tuple, list)) else clean[0]


def _check_object_range(min_objects, max_objects):
    min_objects = check_scalar(min_objects, "min_objects", low=1, integer=True)
    max_objects = check_scalar(max_objects, "max_objects", low=1, integer=True)
    if min_objects > max_objects:
        raise ValueError(f"min_objects ({min_objects}) must be <= max_objects ({max_objects})")
    return min_objects, max_objects
