"""The benchmark harness: edudet against torchvision, in one process, reported as ratios.

A benchmark module ``benchmarks/bench_<concept>.py`` defines ``cases(quick: bool)`` yielding `Case`s.
Each case names an op and a workload, a torchvision callable (or None when torchvision has no such op)
and one edudet callable per backend; inputs are built once, outside the timed calls.
The ratio is ``torchvision time / edudet time``: above 1 means edudet is faster.

Timings are the best of several repeats (the minimum is the least noisy estimate on a shared machine).
Numba's first call in a fresh cache directory includes its compile time, which is reported separately.
"""
from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class Case:
    op: str
    workload: str
    edudet: dict[str, Callable[[], object]]  # backend name -> zero-argument callable
    torchvision: Callable[[], object] | None = None
    repeat: int = 5
    notes: str = ""


@dataclass
class Result:
    op: str
    workload: str
    torchvision_s: float | None
    backend_s: dict[str, float] = field(default_factory=dict)
    first_call_s: dict[str, float] = field(default_factory=dict)

    @property
    def best_backend(self) -> str:
        return min(self.backend_s, key=self.backend_s.get)

    def ratio(self, backend: str) -> float | None:
        if self.torchvision_s is None:
            return None
        return self.torchvision_s / self.backend_s[backend]


def best_time(fn: Callable[[], object], repeat: int = 5, min_run_s: float = 0.05) -> float:
    """Best wall time of one call of `fn` over `repeat` rounds (several calls per round for fast ops)."""
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    number = max(1, int(min_run_s / once)) if once > 0 else 100
    best = float("inf")
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            best = min(best, (time.perf_counter() - start) / number)
    finally:
        gc.enable()
    return best


def run_case(case: Case, backends: list[str] | None = None) -> Result:
    result = Result(case.op, case.workload, None)
    for backend, fn in case.edudet.items():
        if backends is not None and backend not in backends:
            continue
        start = time.perf_counter()
        fn()  # first call: imports, numba compilation (or its cache load), CUDA context
        result.first_call_s[backend] = time.perf_counter() - start
        result.backend_s[backend] = best_time(fn, case.repeat)
    if case.torchvision is not None:
        result.torchvision_s = best_time(case.torchvision, case.repeat)
    return result


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.2f}"


def format_table(results: list[Result], backends: list[str]) -> str:
    """A Markdown table: times in ms per backend, torchvision's, and the best ratio."""
    header = ["op", "workload", "torchvision ms", *[f"{b} ms" for b in backends], "best", "ratio tv/best"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        best = r.best_backend if r.backend_s else None
        ratio = r.ratio(best) if best else None
        cells = [r.op, r.workload, _ms(r.torchvision_s), *[_ms(r.backend_s.get(b)) for b in backends],
                 best or "-", "-" if ratio is None else f"{ratio:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_first_calls(results: list[Result]) -> str:
    """First-call time minus steady time: numba's compile (fresh cache) and other one-off costs."""
    lines = ["| op | workload | backend | first call ms | steady ms | one-off cost ms |", "|---|---|---|---|---|---|"]
    for r in results:
        for backend, first in r.first_call_s.items():
            if backend in ("numba", "cuda"):
                steady = r.backend_s[backend]
                lines.append(f"| {r.op} | {r.workload} | {backend} | {first * 1e3:.0f} | {steady * 1e3:.2f} | "
                             f"{max(first - steady, 0) * 1e3:.0f} |")
    return "\n".join(lines)


# inputs the benchmark modules share ------------------------------------------------------------------------
def torch_and_torchvision():
    """``(torch, torchvision)``, or ``(None, None)`` where they are not installed (edudet rows only)."""
    try:
        import torch
        import torchvision
    except ImportError:
        return None, None
    return torch, torchvision


def random_boxes(rng: np.random.Generator, n: int, height: float = 800.0, width: float = 800.0,
                 min_side: float = 8.0, max_side: float = 200.0) -> np.ndarray:
    """(n, 4) float32 ``(x1, y1, x2, y2)`` boxes inside a `height` x `width` image, sides uniform in [min, max]."""
    wh = rng.uniform(min_side, max_side, size=(n, 2))
    xy = rng.uniform(0, np.array([width, height]) - wh)
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
