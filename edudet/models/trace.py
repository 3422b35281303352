"""Watching a forward pass: each stage's name, the shapes of what it produced, and its time.

``detections, t = model(images, trace=True)`` or ``with edudet.models.trace() as t: model(images)``;
``print(t)`` shows the table. ``trace(progress=print)`` reports each stage as it finishes, and
``keep_arrays=True`` keeps the arrays themselves (the demo draws the anchors and proposals from them).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["Trace", "Stage", "trace", "current_trace"]


def _shape_text(shape) -> str:
    return " x ".join(str(int(s)) for s in shape) if len(shape) else "scalar"


@dataclass
class Stage:
    """One step of the forward pass: ``outputs`` maps a label to the shape of the array it names."""

    name: str
    outputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    seconds: float = 0.0
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    _keep: bool = False

    def add(self, label: str, value) -> None:
        """Record an array (or a list of arrays, one row each, labelled ``label[i]``)."""
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                self.add(f"{label}[{i}]", item)
            return
        if isinstance(value, dict):
            for key, item in value.items():
                self.add(f"{label}[{key}]", item)
            return
        array = np.asarray(value)
        self.outputs[label] = tuple(array.shape)
        if self._keep:
            # a copy: some stages record arrays that the next forward pass overwrites (the pooler's reused ones)
            self.arrays[label] = array.copy()


class Trace:
    """The stages of one or more forward passes, in order; printable as a table."""

    def __init__(self, progress: Callable[[Stage], None] | None = None, keep_arrays: bool = False):
        self.stages: list[Stage] = []
        self.progress = progress
        self.keep_arrays = keep_arrays

    @contextmanager
    def stage(self, name: str):
        record = Stage(name, _keep=self.keep_arrays)
        start = time.perf_counter()
        yield record
        record.seconds = time.perf_counter() - start
        self.stages.append(record)
        if self.progress is not None:
            self.progress(record)

    def __getitem__(self, name: str) -> Stage:
        for record in self.stages:
            if record.name == name:
                return record
        raise KeyError(f"no stage named {name!r}; stages: {[s.name for s in self.stages]}")

    @property
    def total_seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    def table(self) -> str:
        """A Markdown table: stage, output, shape, milliseconds and share of the total time."""
        total = self.total_seconds or 1.0
        rows = [("stage", "output", "shape", "ms", "%")]
        for record in self.stages:
            outputs = list(record.outputs.items()) or [("", ())]
            for i, (label, shape) in enumerate(outputs):
                timing = (f"{record.seconds * 1e3:.1f}", f"{100 * record.seconds / total:.0f}") if i == 0 else ("", "")
                rows.append((record.name if i == 0 else "", label, _shape_text(shape) if label else "", *timing))
        rows.append(("total", "", "", f"{self.total_seconds * 1e3:.1f}", "100"))
        widths = [max(len(r[c]) for r in rows) for c in range(5)]
        lines = []
        for n, row in enumerate(rows):
            cells = [cell.rjust(w) if c >= 3 else cell.ljust(w) for c, (cell, w) in enumerate(zip(row, widths))]
            lines.append("| " + " | ".join(cells) + " |")
            if n == 0:
                lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(lines)

    __str__ = table

    def __repr__(self) -> str:
        return f"Trace({len(self.stages)} stages, {self.total_seconds * 1e3:.1f} ms)"


class _NullStage:
    def add(self, label, value) -> None:
        pass


class _NullTrace:
    """Records nothing: the forward pass's default, so tracing costs nothing when unused."""

    @contextmanager
    def stage(self, name: str):
        yield _NullStage()


NULL_TRACE = _NullTrace()
_ACTIVE: list[Trace] = []


@contextmanager
def trace(progress: Callable[[Stage], None] | None = None, keep_arrays: bool = False):
    """Record every forward pass run inside the ``with`` block into the `Trace` it yields."""
    recorder = Trace(progress, keep_arrays)
    _ACTIVE.append(recorder)
    try:
        yield recorder
    finally:
        _ACTIVE.remove(recorder)


def current_trace():
    """The innermost active `trace()`, or a recorder that records nothing."""
    return _ACTIVE[-1] if _ACTIVE else NULL_TRACE
