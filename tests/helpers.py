"""Helpers shared by the tests: random workloads and the test-dependency import rule."""
from __future__ import annotations

import os

import numpy as np
import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(module: str, needed_for: str = "these tests"):
    """Import a test dependency: skipped locally when missing, a failure in CI (nothing may be skipped there)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:  # pragma: no cover - depends on the environment
        if IN_CI:
            pytest.fail(f"{needed_for} need {module} in CI: {err}")
        pytest.skip(f"{module} not installed: {err}")


def import_torchvision():
    """(torch, torchvision), or skip locally when missing; in CI a missing torchvision is a failure."""
    torch = require("torch", "parity tests")
    torchvision = require("torchvision", "parity tests")
    torch.set_num_threads(1)
    return torch, torchvision


def random_boxes(rng: np.random.Generator, n: int, image_size: float = 800.0, min_side: float = 8.0,
                 max_side: float = 200.0, dtype=np.float32) -> np.ndarray:
    """(n, 4) xyxy boxes inside an image_size x image_size image, sides in [min_side, max_side]."""
    wh = rng.uniform(min_side, max_side, size=(n, 2))
    xy = rng.uniform(0, image_size - wh)
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)


def backends_of(dispatcher) -> list[str]:
    """Backends a Dispatcher can run here (cuda only under the simulator or with a GPU)."""
    return dispatcher.backends
