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


# --- running what might crash in a child interpreter -------------------------------------------------------
CHILD_MEMORY_LIMIT_MB = 6144  # address-space cap: numba/LLVM and torch reserve a lot of virtual memory

_CHILD_PRELUDE = """
import os, sys, traceback, resource
limit = {limit} * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
"""


def run_in_child(source: str, *, timeout: float = 900, memory_limit_mb: int = CHILD_MEMORY_LIMIT_MB):
    """Run Python `source` in a fresh interpreter under an address-space cap; returns CompletedProcess.

    A segfault or abort there is a negative returncode here, a failed test instead of a lost test run.
    """
    import subprocess
    import sys
    import textwrap

    code = _CHILD_PRELUDE.format(limit=int(memory_limit_mb)) + textwrap.dedent(source)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def assert_child_ok(source: str, **kwargs) -> str:
    """`run_in_child(source)` must exit 0 (no crash, no uncaught exception); returns its stdout.

    The message gives the signal or exit code and the child's last output, so a crash names the case that
    was running (print a line before each case in `source`).
    """
    import signal

    result = run_in_child(source, **kwargs)
    if result.returncode != 0:
        how = (f"killed by {signal.Signals(-result.returncode).name}" if result.returncode < 0
               else f"exit code {result.returncode}")
        raise AssertionError(f"child interpreter {how}\n--- stdout (tail) ---\n{result.stdout[-3000:]}"
                             f"\n--- stderr (tail) ---\n{result.stderr[-3000:]}")
    return result.stdout
