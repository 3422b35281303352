"""Whole-model benchmarks: Faster R-CNN, Mask R-CNN, RetinaNet and FCOS (R50-FPN) forward passes, edudet
(NumPy + BLAS) against torchvision on the CPU, the shipped shapes Mask R-CNN (R18-FPN, 256 x 256) with
its trained weights in both libraries, and the MobileNetV3-Large Faster R-CNNs (800 and 320 pixels).

Both models hold the same weights (torchvision's seeded random init) and see the same 800 x 1216 image
(scale factor 1, no padding: the FPN levels are 200 x 304 down to 13 x 19). Besides the table row, the
module prints Faster R-CNN's stage times side by side and edudet's peak memory (tracemalloc: every NumPy
allocation) and the process's peak RSS. ``--quick``: 320 x 480 (min_size 320).

With random weights every class score sits near its prior (1/91 after a softmax, 0.01 after the focal
prior), below the default thresholds, so the Mask R-CNN, RetinaNet and FCOS rows use score threshold 0
in both libraries: the post-processing then does its full work (top-k per level, NMS, 100 / 300
detections, and for Mask R-CNN the mask branch on 100 boxes and 100 pasted full-image masks).

Batches: printed lines give "batch of N per image / single" (one call on N images against N calls of one,
interleaved, 7 rounds: best and median) for the shapes model (4 images) and Faster R-CNN R50-FPN (2 x 320 x 480), for both
libraries, and the R50 batch of 2 is a table row.
"""
from __future__ import annotations

import gc
import resource
import time
import tracemalloc

import numpy as np
from harness import Case, torch_and_torchvision

import edudet
import edudet.models as models
from edudet.demo import sample_image


def _default_backend() -> str:
    usable = edudet.available_backends()
    return next(b for b in ("cython", "numba", "numpy") if b in usable)


def _torch_stages(tv_model, tensor, torch) -> dict[str, float]:
    """torchvision's forward split at the same points as edudet's trace (seconds per stage)."""
    times = {}
    with torch.no_grad():
        start = time.perf_counter()
        image_list, _ = tv_model.transform([tensor])
        times["transform"] = time.perf_counter() - start
        start = time.perf_counter()
        body = tv_model.backbone.body(image_list.tensors)
        times["backbone.body"] = time.perf_counter() - start
        start = time.perf_counter()
        features = tv_model.backbone.fpn(body)
        times["backbone.fpn"] = time.perf_counter() - start
        start = time.perf_counter()
        proposals, _ = tv_model.rpn(image_list, features)
        times["rpn (head, anchors, filter)"] = time.perf_counter() - start
        start = time.perf_counter()
        detections, _ = tv_model.roi_heads(features, proposals, image_list.image_sizes)
        times["roi_heads (pool, head, postprocess)"] = time.perf_counter() - start
        start = time.perf_counter()
        tv_model.transform.postprocess(detections, image_list.image_sizes, [tuple(tensor.shape[-2:])])
        times["transform.postprocess"] = time.perf_counter() - start
    return times


def _stage_table(recorded, torch_times: dict[str, float] | None) -> str:
    groups = {"rpn (head, anchors, filter)": ("rpn.head", "rpn.anchors", "rpn.filter_proposals"),
              "roi_heads (pool, head, postprocess)": ("roi_heads.box_roi_pool", "roi_heads.box_head",
                                                      "roi_heads.postprocess")}
    ours = {}
    for stage in recorded.stages:
        group = next((g for g, names in groups.items() if stage.name in names), stage.name)
        ours[group] = ours.get(group, 0.0) + stage.seconds
    lines = ["| stage | edudet ms | torchvision ms | tv / edudet |", "|---|---|---|---|"]
    for name, seconds in ours.items():
        tv = (torch_times or {}).get(name)
        ratio = f"{tv / seconds:.2f}x" if tv else "-"
        lines.append(f"| {name} | {seconds * 1e3:.0f} | {'-' if tv is None else f'{tv * 1e3:.0f}'} | {ratio} |")
    return "\n".join(lines)


# One forward in a fresh child process per library, measured the same way for both: the rise of the resident
# set (VmHWM after the forward minus VmRSS before it), the peak reset after a small warm-up forward (imports,
# Numba compilation, torch's first-call setup). MALLOC_MMAP_THRESHOLD_ makes glibc return every large block
# when it is freed (both libraries allocate through it), so the figure is live memory, not allocator caching.
_PEAK_CHILD = """
import sys
import numpy as np, torch, torchvision
import edudet.models as models
from edudet.demo import sample_image
library, name, height, width = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(2)
def status(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key)) / 1024
chw = np.ascontiguousarray(sample_image(height, width, seed=0).transpose(2, 0, 1)).astype(np.float32) / np.float32(255)
torch.manual_seed(0)
tv_model = getattr(torchvision.models.detection, name)(weights=None, weights_backbone=None).eval()
if library == "edudet":
    model = getattr(models, name)(tv_model.state_dict())
    del tv_model
    forward = lambda image: model([image])
else:
    def forward(image):
        with torch.no_grad():
            return tv_model([torch.from_numpy(image)])
forward(np.ascontiguousarray(chw[:, :160, :240]))
open("/proc/self/clear_refs", "w").write("5")  # resets VmHWM
before = status("VmRSS:")
forward(chw)
print(status("VmHWM:") - before)
"""


def peak_memory_increase(library: str, name: str, height: int, width: int) -> float | None:
    """MiB by which one `height` x `width` forward of `name` raises a fresh process's peak RSS (Linux only)."""
    import os
    import subprocess
    import sys

    if not os.path.exists("/proc/self/clear_refs"):
        return None
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    done = subprocess.run([sys.executable, "-c", _PEAK_CHILD, library, name, str(height), str(width)],
                          capture_output=True, text=True, env=env)
    return float(done.stdout.split()[-1]) if done.returncode == 0 and done.stdout.strip() else None


def _model_pair(name: str, options: dict, chw: np.ndarray, torch, torchvision):
    """``(model, tv_model, tv_forward)``: edudet's `name` with torchvision's seeded random weights and a
    torchvision forward pass of `chw`; without torch, edudet's own seeded weights and ``None, None``."""
    if torch is None:
        return getattr(models, name)(seed=0, **options), None, None
    torch.manual_seed(0)
    tv_model = getattr(torchvision.models.detection, name)(weights=None, weights_backbone=None, **options).eval()
    model = getattr(models, name)(tv_model.state_dict(), **options)
    tensor = torch.from_numpy(chw)

    def tv_forward():
        with torch.no_grad():
            return tv_model([tensor])
    return model, tv_model, tv_forward


def _faster_rcnn_cases(quick: bool, chw: np.ndarray, sizes: dict, height: int, width: int):
    # torchvision's defaults (800, 1333) for the full run; either way the scale factor is 1 (no resampling)
    torch, torchvision = torch_and_torchvision()
    model, tv_model, tv_forward = _model_pair("fasterrcnn_resnet50_fpn", sizes, chw, torch, torchvision)
    model([chw])  # warm up: kernel imports and numba compilation
    tracemalloc.start()
    detections, recorded = model([chw], trace=True)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    torch_times = None
    if tv_forward is not None:
        tv_forward()
        torch_times = _torch_stages(tv_model, torch.from_numpy(chw), torch)
    print(f"\nFaster R-CNN R50-FPN, {height} x {width}: stage times (one traced run each; noisy on a shared machine)")
    print(_stage_table(recorded, torch_times))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"edudet peak NumPy memory during one forward (tracemalloc): {peak / 2**20:.0f} MiB; "
          f"process peak RSS so far (both models, weights included): {rss:.0f} MiB; "
          f"{len(detections[0]['boxes'])} detections", flush=True)
    if torch is not None:
        peaks = {library: peak_memory_increase(library, "fasterrcnn_resnet50_fpn", height, width)
                 for library in ("edudet", "torchvision")}
        print("peak RSS increase of one forward, fresh child process per library: "
              + ", ".join(f"{k} {'-' if v is None else f'{v:.0f} MiB'}" for k, v in peaks.items()), flush=True)
    print()
    yield Case("fasterrcnn_resnet50_fpn", f"{height}x{width} forward, 1 image",
               edudet={_default_backend(): lambda: model([chw])}, torchvision=tv_forward, repeat=2 if not quick else 3)


_OTHER_MODELS = [
    # (name, torchvision and edudet builder name, the score-threshold keyword)
    ("maskrcnn_resnet50_fpn", "box_score_thresh"),
    ("retinanet_resnet50_fpn", "score_thresh"),
    ("fcos_resnet50_fpn", "score_thresh"),
    ("fasterrcnn_resnet50_fpn_v2", "box_score_thresh"),
    ("maskrcnn_resnet50_fpn_v2", "box_score_thresh"),
    ("retinanet_resnet50_fpn_v2", "score_thresh"),
]


def _other_cases(quick: bool, chw: np.ndarray, sizes: dict, height: int, width: int):
    torch, torchvision = torch_and_torchvision()
    for name, score_keyword in _OTHER_MODELS:
        options = dict(sizes, **{score_keyword: 0.0})
        model, _, tv_forward = _model_pair(name, options, chw, torch, torchvision)
        detections = model([chw])  # warm up
        print(f"{name}: {len(detections[0]['boxes'])} detections at {height} x {width}", flush=True)
        del detections
        yield Case(name, f"{height}x{width} forward, 1 image, score threshold 0",
                   edudet={_default_backend(): lambda model=model: model([chw])}, torchvision=tv_forward,
                   repeat=2 if not quick else 3)
        del model, tv_forward


def _shapes_case():
    """The shipped shapes detector on an evaluation image, its weights loaded into the torchvision twin too."""
    from edudet.data import ShapesDataset
    from edudet.models.light import SHAPES_WEIGHTS, torchvision_model

    model = models.shapes_detector()
    image, _ = ShapesDataset(1, seed=2)[0]
    model([image])  # warm up
    tv_forward = None
    torch, _ = torch_and_torchvision()
    if torch is not None:
        tv_model = torchvision_model("maskrcnn_resnet18_fpn", weights=SHAPES_WEIGHTS).eval()
        tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255

        def tv_forward():
            with torch.no_grad():
                return tv_model([tensor])
    yield Case("maskrcnn_resnet18_fpn", "256x256 forward, 1 image, shipped shapes weights",
               edudet={_default_backend(): lambda: model([image])}, torchvision=tv_forward, repeat=10)


def _mobilenet_cases(quick: bool, chw: np.ndarray, sizes: dict, height: int, width: int):
    """The MobileNetV3-Large Faster R-CNNs: the 800-pixel one on the R50 rows' image, the 320 one on a
    320 x 480 image (scale factor 1 for both), score threshold 0 as the other random-weight rows."""
    torch, torchvision = torch_and_torchvision()
    small = sample_image(320, 480, seed=0)
    small_chw = np.ascontiguousarray(small.transpose(2, 0, 1)).astype(np.float32) / np.float32(255)
    for name, image, options, shape in (
            ("fasterrcnn_mobilenet_v3_large_fpn", chw, sizes, f"{height}x{width}"),
            ("fasterrcnn_mobilenet_v3_large_320_fpn", small_chw, {}, "320x480")):
        model, _, tv_forward = _model_pair(name, dict(options, box_score_thresh=0.0), image, torch, torchvision)
        model([image])  # warm up
        yield Case(name, f"{shape} forward, 1 image, score threshold 0",
                   edudet={_default_backend(): lambda model=model, image=image: model([image])},
                   torchvision=tv_forward, repeat=3 if not quick else 5)
        del model, tv_forward


def batch_and_single_times(forward, images: list, repeat: int = 7) -> tuple[list[float], list[float]]:
    """Seconds of each ``forward(images)`` call and of each round of ``forward([image])`` for every image, sorted,
    measured interleaved (batch, singles, singles, batch, ...) so that a change of load on a shared machine hits
    both."""
    forward(images)  # warm up both ways
    for image in images:
        forward([image])
    times = {"batch": [], "singles": []}
    gc.disable()
    try:
        for round_ in range(repeat):
            for way in ("batch", "singles") if round_ % 2 == 0 else ("singles", "batch"):
                start = time.perf_counter()
                if way == "batch":
                    forward(images)
                else:
                    for image in images:
                        forward([image])
                times[way].append(time.perf_counter() - start)
    finally:
        gc.enable()
    return sorted(times["batch"]), sorted(times["singles"])


def _batch_ratios(forward, images: list) -> tuple[float, float, float, float]:
    """(best batch / best singles, median / median, best batch and best singles seconds per image)."""
    batch, singles = batch_and_single_times(forward, images)
    middle = len(batch) // 2
    return batch[0] / singles[0], batch[middle] / singles[middle], batch[0] / len(images), singles[0] / len(images)


def _batch_line(name: str, workload: str, forward, images: list, tv_forward=None, tv_images=None) -> str:
    best, median, batch, single = _batch_ratios(forward, images)
    # the best of 7 and the median: on a machine whose speed drifts, the two can differ by 0.1
    line = (f"{name}, {workload}: batch of {len(images)} per image / single = {best:.2f} best, {median:.2f} median "
            f"(edudet: {batch * 1e3:.0f} ms per image in one call, {single * 1e3:.0f} ms one at a time)")
    if tv_forward is not None:
        tv_best, tv_median, _, _ = _batch_ratios(tv_forward, tv_images)
        line += f"; torchvision {tv_best:.2f} best, {tv_median:.2f} median"
    return line


def _batch_cases(quick: bool):
    """Several images per call against one call per image (the issue's "batch inference at least as efficient
    per image"): the shapes model on 4 images of 256 x 256, Faster R-CNN R50-FPN on 2 images of 320 x 480
    (min_size 320, scale factor 1, no padding). Printed lines; the R50 batch is also a table row against
    torchvision's batch of 2."""
    from edudet.data import ShapesDataset
    from edudet.models.light import SHAPES_WEIGHTS, torchvision_model

    torch, torchvision = torch_and_torchvision()
    dataset = ShapesDataset(4, seed=2)
    images = [dataset[i][0] for i in range(4)]
    model = models.shapes_detector()
    tv_forward = tensors = None
    if torch is not None:
        tv_model = torchvision_model("maskrcnn_resnet18_fpn", weights=SHAPES_WEIGHTS).eval()
        tensors = [torch.from_numpy(image).permute(2, 0, 1).float() / 255 for image in images]

        def tv_forward(batch):
            with torch.no_grad():
                return tv_model(batch)
    print(_batch_line("maskrcnn_resnet18_fpn (shapes)", "4 x 256x256", model, images, tv_forward, tensors),
          flush=True)
    del model

    chws = [np.ascontiguousarray(sample_image(320, 480, seed=seed).transpose(2, 0, 1)).astype(np.float32)
            / np.float32(255) for seed in range(2)]
    sizes = dict(min_size=320, max_size=512)
    model, tv_model, _ = _model_pair("fasterrcnn_resnet50_fpn", sizes, chws[0], torch, torchvision)
    tv_forward = tensors = None
    if tv_model is not None:
        tensors = [torch.from_numpy(chw) for chw in chws]

        def tv_forward(batch):
            with torch.no_grad():
                return tv_model(batch)
    print(_batch_line("fasterrcnn_resnet50_fpn", "2 x 320x480, min_size 320", model, chws, tv_forward, tensors),
          flush=True)
    yield Case("fasterrcnn_resnet50_fpn", "2 x 320x480 forward, batch of 2 in one call",
               edudet={_default_backend(): lambda: model(chws)},
               torchvision=None if tv_forward is None else (lambda: tv_forward(tensors)), repeat=3)


def cases(quick: bool):
    height, width = (320, 480) if quick else (800, 1216)
    sizes = dict(min_size=320, max_size=512) if quick else {}
    image = sample_image(height, width, seed=0)
    chw = np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32) / np.float32(255)
    yield from _shapes_case()
    yield from _batch_cases(quick)
    yield from _faster_rcnn_cases(quick, chw, sizes, height, width)
    yield from _other_cases(quick, chw, sizes, height, width)
    yield from _mobilenet_cases(quick, chw, sizes, height, width)
