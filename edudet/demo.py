"""``python -m edudet demo``: a trained detector in NumPy on a generated image, stage by stage, drawn to a PNG.

By default: the light Mask R-CNN shipped with edudet (ResNet-18-FPN, trained on `edudet.data.shapes` by
``tools/train_shapes.py``) on a new generated image of circles, squares and triangles; it prints each
stage, the detections and how many ground-truth shapes they found, and draws the ground truth, anchors,
proposals and the detections with their masks.

``--weights file.npz``: any converted checkpoint (``python -m edudet convert model.pth file.npz``; the file
says which detector it holds, and a ``--model`` given with it must agree), e.g. torchvision's COCO Faster
R-CNN, on a 480 x 640 sample image.
``--random [--model fasterrcnn|maskrcnn|fcos|retinanet|shapes]``: seeded random weights (default Faster
R-CNN R50-FPN): every stage runs exactly as with trained weights, but the detections mean nothing.
A missing or unreadable weights or image file ends the demo with one line naming it, exit code 2.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ._validate import check_allocation, check_scalar

__all__ = ["main", "sample_image", "COCO_CATEGORIES"]

# torchvision's 91 COCO label slots (0 is the background; "N/A" marks ids COCO does not use)
COCO_CATEGORIES = [
    "__background__", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "N/A", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "N/A", "backpack", "umbrella", "N/A", "N/A",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
    "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "N/A", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza",
    "donut", "cake", "chair", "couch", "potted plant", "bed", "N/A", "dining table", "N/A", "N/A", "toilet",
    "N/A", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "N/A", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
]


def sample_image(height: int = 480, width: int = 640, seed: int = 0) -> np.ndarray:
    """``(height, width, 3)`` uint8: a few coloured shapes (disc, box, triangle, ellipse) on a textured background."""
    height = check_scalar(height, "height", low=1, integer=True)
    width = check_scalar(width, "width", low=1, integer=True)
    seed = check_scalar(seed, "seed", low=0, integer=True)
    check_allocation((height, width, 3), 8, "sample_image's (height, width, 3) float64 canvas")
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y /= max(height - 1, 1)
    x /= max(width - 1, 1)
    # background: a soft two-tone gradient, wood-like stripes and grain
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (6 * x + 2 * y + 0.3 * np.sin(2 * np.pi * 3 * y)))
    base = np.stack([0.55 + 0.25 * y, 0.50 + 0.15 * x, 0.40 + 0.10 * (1 - y)], axis=-1)
    image = base * (0.8 + 0.2 * stripes[..., None]) + rng.normal(0, 0.03, (height, width, 3))
    h, w = float(height), float(width)
    # disc (red), box (blue), triangle (green), ellipse (yellow); positions jittered by the seed
    cx, cy, r = w * rng.uniform(0.2, 0.3), h * rng.uniform(0.25, 0.35), 0.15 * min(h, w)
    image[(x * (w - 1) - cx) ** 2 + (y * (h - 1) - cy) ** 2 < r ** 2] = (0.85, 0.15, 0.15)
    x0, y0 = w * rng.uniform(0.55, 0.6), h * rng.uniform(0.15, 0.25)
    inside = (x * (w - 1) > x0) & (x * (w - 1) < x0 + 0.3 * w) & (y * (h - 1) > y0) & (y * (h - 1) < y0 + 0.25 * h)
    image[inside] = (0.15, 0.3, 0.85)
    px, py = x * (w - 1), y * (h - 1)
    ax, ay, size = w * rng.uniform(0.15, 0.25), h * rng.uniform(0.6, 0.65), 0.3 * min(h, w)
    triangle = (py < ay + size) & (py > ay + size - 2 * (size - np.abs(px - ax - size / 2) * 2) / 2) & \
               (np.abs(px - ax - size / 2) < size / 2)
    image[triangle] = (0.2, 0.75, 0.25)
    ex, ey = w * rng.uniform(0.65, 0.75), h * rng.uniform(0.65, 0.75)
    image[((px - ex) / (0.14 * w)) ** 2 + ((py - ey) / (0.09 * h)) ** 2 < 1] = (0.95, 0.85, 0.2)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def _anchor_sample(anchors: np.ndarray, feature_shapes, per_level: int, rng, per_location: int = 3) -> np.ndarray:
    """A few locations' anchors from every level (all `per_location` anchors of each location)."""
    picked, start = [], 0
    for h, w in feature_shapes:
        count = h * w * per_location
        # locations near the image centre, so the big anchors stay in view
        rows = rng.integers(h // 4, max(h // 4 + 1, 3 * h // 4), per_level)
        cols = rng.integers(w // 4, max(w // 4 + 1, 3 * w // 4), per_level)
        for r, c in zip(rows, cols):
            first = start + (r * w + c) * per_location
            picked.append(anchors[first: first + per_location])
        start += count
    return np.concatenate(picked)


def _draw(path: Path, image: np.ndarray, panels, detections, labels_text, masks, title: str,
          margin: float = 0.25) -> None:
    """One panel per ``(title, kind, array, colour)`` or ``(title, kind, array, colour, texts)``: kind "boxes"
    draws (K, 4) boxes (labelled with `texts` when given), "points" (K, 2) points coloured by level (array
    then is a list of per-level arrays); the last panel shows the detections and, when given, their masks
    with opacity 0.6 x probability (the most probable mask wins a pixel). `margin`: the view extends this
    fraction of the image past each side (anchors reach outside the image)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    panels = list(panels) + [(f"{len(detections)} detections" + (" with masks" if masks is not None else ""),
                              "boxes", detections, "tab:red", labels_text)]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5.6))
    for axis, (name, kind, array, colour, *texts) in zip(np.atleast_1d(axes), panels):
        texts = texts[0] if texts else []
        axis.imshow(image)
        if kind == "points":
            cmap = plt.get_cmap("viridis")
            for level, points in enumerate(array):
                axis.scatter(points[:, 0], points[:, 1], s=4 + 6 * level, color=cmap(level / max(len(array) - 1, 1)),
                             label=f"level {level}")
            axis.legend(loc="lower right", fontsize=7)
        else:
            if array is detections and masks is not None and len(masks):
                overlay = np.zeros((*image.shape[:2], 4))
                palette = plt.get_cmap("tab10")
                for i, mask in enumerate(masks[:, 0]):
                    # opacity follows the probability: trained masks look solid, random ones show as a haze
                    inside = mask > overlay[..., 3] / 0.6
                    overlay[inside] = (*palette(i % 10)[:3], 0)
                    overlay[inside, 3] = 0.6 * mask[inside]
                axis.imshow(overlay)
            for i, (x1, y1, x2, y2) in enumerate(array):
                axis.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.2))
                if i < len(texts):
                    axis.text(x1, y1, texts[i], fontsize=7, color="white", va="bottom",
                              bbox=dict(facecolor=colour, alpha=0.7, pad=1, linewidth=0))
        axis.set_title(name)
        axis.set_xlim(-margin * image.shape[1], (1 + margin) * image.shape[1])
        axis.set_ylim((1 + margin) * image.shape[0], -margin * image.shape[0])
        axis.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --model name -> (builder name, title, score keyword)
_MODELS = {
    "shapes": ("maskrcnn_resnet18_fpn", "Mask R-CNN R18-FPN (shapes)", "box_score_thresh"),
    "fasterrcnn": ("fasterrcnn_resnet50_fpn", "Faster R-CNN R50-FPN", "box_score_thresh"),
    "maskrcnn": ("maskrcnn_resnet50_fpn", "Mask R-CNN R50-FPN", "box_score_thresh"),
    "fcos": ("fcos_resnet50_fpn", "FCOS R50-FPN", "score_thresh"),
    "retinanet": ("retinanet_resnet50_fpn", "RetinaNet R50-FPN", "score_thresh"),
    "fasterrcnn_r18": ("fasterrcnn_resnet18_fpn", "Faster R-CNN R18-FPN", "box_score_thresh"),
}
_MAX_SIDE = 4096  # --min-size / --max-size limit: a 4096-px image already takes minutes in NumPy
# the demo's own image seeds for the shapes data: training used 1, evaluation 2 and 3 (tools/train_shapes.py)
DEMO_DATA_SEED = 7


def _panels(model, recorded, image, image_size, seed):
    """What to draw before the detections: anchors and proposals (two-stage), anchors or points (one-stage)."""
    from edudet.models.transform import resize_boxes

    rng = np.random.default_rng(seed)
    to_original = lambda boxes: resize_boxes(boxes, image_size, image.shape[:2])  # noqa: E731
    shapes = [shape[-2:] for shape in recorded["backbone.fpn"].outputs.values()]
    if recorded.stages[3].name == "rpn.head":
        anchors = _anchor_sample(recorded["rpn.anchors"].arrays["anchors"], shapes, 2, rng)
        proposals = recorded["rpn.filter_proposals"].arrays["proposals[0]"][:30]
        per_location = model.rpn.anchor_generator.num_anchors_per_location()[0]
        return [(f"a sample of anchors ({per_location} per location, {len(shapes)} levels)", "boxes",
                 to_original(anchors), "tab:orange"),
                (f"top {len(proposals)} RPN proposals", "boxes", to_original(proposals), "tab:cyan")]
    anchors = recorded["anchors"].arrays["anchors"]
    per_location = model.anchor_generator.num_anchors_per_location()[0]
    if per_location == 1:  # FCOS: the anchors' centres are the points, (j * stride, i * stride)
        counts = model.anchor_generator.num_anchors_per_level(shapes)
        centres = (anchors[:, :2] + anchors[:, 2:]) / 2
        scale = np.array([image.shape[1] / image_size[1], image.shape[0] / image_size[0]], np.float32)
        points = [level * scale for level in np.split(centres, np.cumsum(counts)[:-1])]
        return [("FCOS points (j * stride, i * stride), strides 8 .. 128", "points", points, None)]
    sample = _anchor_sample(anchors, shapes, 1, rng, per_location)
    return [(f"a sample of anchors ({per_location} per location, {len(shapes)} levels)", "boxes",
             to_original(sample), "tab:orange")]


def _match_summary(result, keep, target) -> str:
    """How many ground-truth shapes a kept detection of the right class covers with IoU >= 0.5 (greedy, by score)."""
    from edudet.ops import box_iou

    boxes, labels = result["boxes"][keep], result["labels"][keep]
    if len(target["boxes"]) == 0 or len(boxes) == 0:
        return f"0 of {len(target['boxes'])} ground-truth shapes found; {len(boxes)} detections"
    iou = box_iou(boxes, target["boxes"])
    iou[labels[:, None] != target["labels"][None, :]] = 0.0
    found = np.zeros(len(target["boxes"]), bool)
    false_positives = 0
    for row in iou:  # detections come sorted by score
        row = np.where(found, 0.0, row)
        if row.max() >= 0.5:
            found[row.argmax()] = True
        else:
            false_positives += 1
    return (f"{found.sum()} of {len(found)} ground-truth shapes found (IoU >= 0.5, right class); "
            f"{false_positives} detection(s) matching none")


def _architecture_in(path) -> str:
    """The detector an ``.npz`` says it holds ("" when it does not say or cannot be read), without reading its
    weights; `edudet.models.load` then reports what is wrong with a file that cannot be read."""
    import json

    from edudet.models.weights import CONFIG_KEY

    if not Path(path).exists():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:  # entries are read lazily: only the config is
            config = json.loads(str(data[CONFIG_KEY])) if CONFIG_KEY in data.files else {}
        return str(config.get("architecture", ""))
    except Exception:  # noqa: BLE001 - any damage is reported by models.load, with the file's name
        return ""


def _check_model_matches(args, architecture: str) -> None:
    """--model and --weights together: the file must hold the detector --model names (the file decides)."""
    if args.model is None or not architecture:
        return
    wanted = _MODELS[args.model][0]
    if architecture != wanted:
        raise ValueError(f"--model {args.model} asks for {wanted}, but {args.weights} holds {architecture}; drop "
                         "--model (the weights file names its detector) or pass weights for that model")


def _read_image(path) -> np.ndarray:
    """A PNG (or any format Pillow reads) as ``(H, W, 3)`` uint8; grey and alpha channels are handled."""
    import matplotlib.image

    if not Path(path).is_file():
        raise FileNotFoundError(f"image file {str(path)!r} does not exist" if not Path(path).exists()
                                else f"image file {str(path)!r} is not a file")
    try:
        image = np.asarray(matplotlib.image.imread(path))
    except Exception as err:  # noqa: BLE001 - image decoders raise many kinds of errors on a damaged file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"image file {str(path)!r} cannot be read as an image: {reason}") from None
    if image.ndim == 2:  # grey
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4) or min(image.shape[:2]) < 1:
        raise ValueError(f"image file {str(path)!r} has an unusable shape {image.shape}")
    image = image[..., :3] if image.shape[2] >= 3 else np.repeat(image[..., :1], 3, axis=2)  # drop alpha
    if image.dtype != np.uint8:  # PNGs come as floats in [0, 1]
        image = (np.clip(image.astype(np.float32), 0, 1) * 255).round().astype(np.uint8)
    return np.ascontiguousarray(image)


def _fail(err) -> int:
    """One line on stderr, exit code 2: the CLI's answer to a bad file or argument (no traceback)."""
    print(f"edudet demo: {' '.join(str(err).split())}", file=sys.stderr)
    return 2


def _build_model(args, say):
    """(model, title, weights description, random?) from --weights / --random / --model."""
    import edudet.models as models

    if args.weights:
        say(f"loading weights from {args.weights}")
        architecture = _architecture_in(args.weights)
        _check_model_matches(args, architecture)
        small = architecture.endswith("resnet18_fpn")
        # ResNet-50 models run at 512 px here (torchvision: 800) to keep the demo quick; small ones at their own size
        min_size = args.min_size or (None if small else 512)
        options = ({} if min_size is None
                   else dict(min_size=min_size, max_size=args.max_size or round(min_size * 1333 / 800)))
        model = models.load(args.weights, **options)
        _check_model_matches(args, model.architecture)  # a file without a recorded architecture
        title = next((t for b, t, _ in _MODELS.values() if b == model.architecture), model.architecture)
        return model, title, Path(args.weights).name, False
    name = args.model or ("fasterrcnn" if args.random else "shapes")
    builder_name, title, score_keyword = _MODELS[name]
    light = builder_name.endswith("resnet18_fpn")
    min_size = args.min_size or 512
    options = {} if light and args.min_size is None else dict(min_size=min_size,
                                                              max_size=args.max_size or round(min_size * 1333 / 800))
    if name == "shapes" and not args.random:
        say(f"edudet demo: {title}, a NumPy forward pass, with the weights shipped in edudet "
            "(trained on generated shapes by tools/train_shapes.py)")
        return models.shapes_detector(**options), title, "shipped shapes weights", False
    say(f"edudet demo: {title}, a NumPy forward pass (torchvision's semantics and weights)")
    say(f"NOTE: the model has seeded RANDOM weights (seed {args.seed}). Every stage runs as it would with "
        "trained weights, but the detections are meaningless. Trained weights: run the demo without --random "
        f"and --model (the shipped shapes detector), or `python -m edudet convert {builder_name}_coco.pth "
        "model.npz` and pass --weights model.npz.")
    if light:
        options["num_classes"] = 4
    model = getattr(models, builder_name)(seed=args.seed, **{score_keyword: 0.0}, **options)
    return model, title, "RANDOM weights", True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edudet demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(_MODELS), default=None,
                        help="which detector (default: shapes, the shipped trained one; fasterrcnn with --random; "
                             "with --weights, the file names it: --model must then agree)")
    parser.add_argument("--weights", help="an .npz from `python -m edudet convert` or model.save")
    parser.add_argument("--random", action="store_true",
                        help="seeded random weights (every stage runs; the detections mean nothing)")
    parser.add_argument("--out", default="edudet_demo.png", help="where to write the annotated PNG")
    parser.add_argument("--min-size", type=int, default=None,
                        help="short side after resizing (default: the model's own; 512 for random R50 models)")
    parser.add_argument("--max-size", type=int, default=None, help="long side limit (default: 1333/800 x min-size)")
    parser.add_argument("--image", help="a PNG of your own instead of the generated image")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated image and the random weights")
    parser.add_argument("--score-thresh", type=float, default=None,
                        help="detections to draw: score above this (default 0.5; random weights: the top 10)")
    args = parser.parse_args(argv)
    if args.weights and args.random:
        parser.error("--weights and --random exclude each other")
    # sizes beyond a few thousand pixels would only exhaust memory: refuse them here, by name
    if args.min_size is not None and not 32 <= args.min_size <= _MAX_SIDE:
        parser.error(f"--min-size must be in [32, {_MAX_SIDE}]")
    if args.max_size is not None and not 32 <= args.max_size <= _MAX_SIDE:
        parser.error(f"--max-size must be in [32, {_MAX_SIDE}]")
    if not 0 <= args.seed <= 2**63 - 1:
        parser.error("--seed must be in [0, 2**63 - 1]")
    if args.score_thresh is not None and not np.isfinite(args.score_thresh):
        parser.error("--score-thresh must be finite")

    import edudet.models as models
    from edudet.data import shapes

    say = lambda text: print(text, flush=True)  # noqa: E731
    start = time.perf_counter()
    if args.image:  # read first: a bad file fails before the model loads
        try:
            user_image = _read_image(args.image)
        except (OSError, ValueError) as err:
            return _fail(err)
    try:
        model, title_name, weights_name, random_weights = _build_model(args, say)
    except (OSError, ValueError, TypeError) as err:  # a missing, damaged or mismatched weights file
        return _fail(err)
    say(f"model ready in {time.perf_counter() - start:.1f} s: {model!r}")

    # a shapes detector sees images like those it was trained on, with their ground truth
    shapes_model = model.num_classes == len(shapes.CLASSES)
    target = None
    if args.image:
        image = user_image
        say(f"image: {args.image}, {image.shape[0]} x {image.shape[1]}")
    elif shapes_model:
        size = int(model.config.get("min_size", 256)) if args.min_size is None else 256
        image, target = shapes.make_image((DEMO_DATA_SEED, args.seed), image_size=size)
        say(f"image: generated shapes image {args.seed} (data seed {DEMO_DATA_SEED}: not seen in training), "
            f"{size} x {size}, {len(target['labels'])} shapes")
    else:
        image = sample_image(480, 640, seed=args.seed)
        say("image: generated, 480 x 640 (coloured shapes on a textured background)")

    def progress(stage):
        shapes_text = ", ".join(f"{k} {' x '.join(map(str, v))}" for k, v in list(stage.outputs.items())[:2])
        more = f" (+{len(stage.outputs) - 2} more)" if len(stage.outputs) > 2 else ""
        say(f"  {stage.name:24s} {stage.seconds * 1e3:8.1f} ms   {shapes_text}{more}")

    say("running the forward pass:")
    try:
        with models.trace(progress=progress, keep_arrays=True) as recorded:
            result = model([image])[0]
    except ValueError as err:  # e.g. an image too thin to resize: the message names it
        return _fail(f"{args.image or 'the image'}: {err}")
    say("")
    say(str(recorded))
    say("")

    # anchors, points and proposals live in the resized image; they are scaled to the original for drawing
    resized = recorded["transform"].arrays["images"].shape[-2:]
    image_size = model.transform.resized_size(*image.shape[:2])
    panels = _panels(model, recorded, image, image_size, args.seed)
    if random_weights and args.score_thresh is None:
        keep = np.arange(min(10, len(result["scores"])))
        say(f"random weights: drawing the top {len(keep)} detections whatever their scores (they mean nothing)")
    else:
        threshold = 0.5 if args.score_thresh is None else args.score_thresh
        keep = np.nonzero(result["scores"] > threshold)[0]
        say(f"{len(keep)} detections with score > {threshold}")
    names = (COCO_CATEGORIES if model.num_classes == len(COCO_CATEGORIES)
             else shapes.CLASSES if shapes_model else None)
    labels_text = []
    for i in keep:
        label = int(result["labels"][i])
        name = names[label] if names else f"class {label}"
        labels_text.append(f"{name} {result['scores'][i]:.2f}")
        box = ", ".join(f"{v:.0f}" for v in result["boxes"][i])
        say(f"  {name:16s} {result['scores'][i]:.3f}  [{box}]")
    if target is not None:
        say(_match_summary(result, keep, target))
        truth = [shapes.CLASSES[int(label)] for label in target["labels"]]
        panels.insert(0, (f"ground truth: {len(truth)} shapes", "boxes", target["boxes"], "tab:green", truth))
    out = Path(args.out)
    title = (f"{title_name} in NumPy, {weights_name}; "
             f"input {image.shape[0]} x {image.shape[1]} -> {resized[0]} x {resized[1]} padded, "
             f"{recorded.total_seconds:.1f} s")
    masks = result["masks"][keep] if "masks" in result else None
    # the light model's anchors (16-128 px, 3 ratios) barely leave a 256-px image: a narrow margin suffices
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _draw(out, image, panels, result["boxes"][keep], labels_text, masks, title,
              margin=0.1 if shapes_model else 0.25)
    except OSError as err:
        return _fail(f"cannot write {out}: {err}")
    say(f"wrote {out.resolve()}")
    say(f"total {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
