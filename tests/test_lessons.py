"""The step-through lessons: each one runs top to bottom, draws, and passes its own checks.

Every ``lessons/NN_topic.py`` (jupytext percent format) is read into a notebook and executed with
nbclient on the "python3" kernel, with a fixed seed and ``MPLBACKEND=Agg``; any error or failed assert
fails the test, and so does a lesson that shows no figure (a display_data output carrying image/png).
The lessons are also read as text: title cell, imports (edudet's public API, numpy, matplotlib and the
standard library only) and the closing "check yourself" cell of asserts. Last, `edudet.viz`, the drawing
helpers the lessons share: its two geometry rules (RoIAlign's sampling points, RoIPool's bins) by hand and
against torchvision, and every helper returning a titled, labelled ax.
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import import_torchvision, require

LESSON_DIR = Path(__file__).resolve().parent.parent / "lessons"
LESSONS = sorted(LESSON_DIR.glob("[0-9][0-9]_*.py"))
# the issue asks for under 60 s per lesson on 2 cores; EDUDET_LESSON_BUDGET_S relaxes it on a busy machine
BUDGET_S = float(os.environ.get("EDUDET_LESSON_BUDGET_S", "60"))
SEED_CELL = "import random as _random\nimport numpy as _np\n_random.seed(0)\n_np.random.seed(0)"
ALLOWED_THIRD_PARTY = {"numpy", "matplotlib", "edudet"}


def _ids(path: Path) -> str:
    return path.stem


def _require(module: str):
    """A test dependency (pyproject [test]): skipped locally when missing, a failure in CI."""
    return require(module, "the lesson tests")


def _read(path: Path):
    return _require("jupytext").read(path)


def _code_cells(notebook) -> list[str]:
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def _python_source(cell_source: str) -> str:
    """A code cell as plain Python: IPython magics (``%matplotlib inline``) and shell lines dropped."""
    return "\n".join(line for line in cell_source.splitlines() if not line.lstrip().startswith(("%", "!")))


def test_lessons_exist_and_are_numbered():
    assert LESSONS, f"no lessons found in {LESSON_DIR}"
    numbers = [int(path.name[:2]) for path in LESSONS]
    assert len(set(numbers)) == len(numbers), f"two lessons share a number: {[p.name for p in LESSONS]}"
    assert all(1 <= n <= 99 for n in numbers), f"lessons are numbered 01..99: {[p.name for p in LESSONS]}"
    for path in LESSONS:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.py", path.name), f"{path.name}: name lessons NN_topic.py"


@pytest.mark.parametrize("path", LESSONS, ids=_ids)
def test_lesson_reads_as_a_lesson(path):
    notebook = _read(path)
    first = notebook.cells[0]
    assert first.cell_type == "markdown", f"{path.name}: the first cell must be the markdown title cell"
    title = first.source.splitlines()[0]
    assert re.fullmatch(r"# [^:]+: \S.*", title), f"{path.name}: first line must be '# <Title>: <summary>'"
    last = notebook.cells[-1]
    heading = notebook.cells[-2]
    assert last.cell_type == "code" and "assert " in last.source, f"{path.name}: must end with a cell of asserts"
    assert heading.cell_type == "markdown" and "check yourself" in heading.source.lower(), (
        f"{path.name}: the asserts must sit under a 'Check yourself' heading"
    )
    uses_plots = any("plt.show()" in source for source in _code_cells(notebook))
    assert uses_plots, f"{path.name}: a lesson draws what it computes (plt.show())"


@pytest.mark.parametrize("path", LESSONS, ids=_ids)
def test_lesson_imports_only_the_public_api(path):
    stdlib = set(sys.stdlib_module_names)
    for source in _code_cells(_read(path)):
        tree = ast.parse(_python_source(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
                if node.module == "edudet" or (node.module or "").startswith("edudet."):
                    modules += [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                assert top in ALLOWED_THIRD_PARTY or top in stdlib, f"{path.name} imports {module}"
                if top == "edudet":
                    assert not any(part.startswith("_") for part in module.split(".")), (
                        f"{path.name} imports the private {module}; lessons use edudet's public API"
                    )
        assert not re.search(r"\bedudet(\.\w+)*\._", _python_source(source)), (
            f"{path.name} reaches into a private edudet name"
        )


def test_cli_lists_every_lesson():
    result = subprocess.run([sys.executable, "-m", "edudet", "lessons"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    for path in LESSONS:
        title = next(line for line in path.read_text().splitlines() if line.startswith("# # "))[4:].strip()
        lines = [line for line in result.stdout.splitlines() if line.startswith(path.stem)]
        assert lines, f"`python -m edudet lessons` does not list {path.stem}"
        assert title in lines[0], f"{path.stem}: expected its title {title!r} in {lines[0]!r}"


def _image_outputs(notebook) -> int:
    return sum(
        1
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "display_data" and "image/png" in output.get("data", {})
    )


@pytest.mark.slow
@pytest.mark.parametrize("path", LESSONS, ids=_ids)
def test_lesson_runs_and_draws(path, monkeypatch):
    nbformat = _require("nbformat")
    nbclient = _require("nbclient")
    _require("ipykernel")
    notebook = _read(path)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(SEED_CELL))  # the fixed seed, before anything runs
    # the kernel inherits this environment: headless matplotlib (each lesson switches to the inline
    # backend with `%matplotlib inline`, which renders through Agg), reproducible hashing
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=int(2 * BUDGET_S),
                                     resources={"metadata": {"path": str(LESSON_DIR)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, on any exception or failed assert
    elapsed = time.perf_counter() - start
    assert _image_outputs(notebook) > 0, f"{path.name} showed no figure (no display_data with image/png)"
    assert elapsed < BUDGET_S, f"{path.name} took {elapsed:.1f} s, over the {BUDGET_S:.0f} s budget"


# ---------------------------------------------------------------------------------------------------------
# edudet.viz: the drawing helpers the lessons share (hand cases, properties, parity of the two geometry rules)
# ---------------------------------------------------------------------------------------------------------

@pytest.fixture
def plt():
    matplotlib = _require("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    yield pyplot
    pyplot.close("all")


def test_import_edudet_does_not_import_matplotlib():
    code = "import sys, edudet, edudet.viz; assert 'matplotlib' not in sys.modules, 'edudet.viz imported matplotlib'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_sampling_points_by_hand():
    from edudet import viz

    # RoI (0, 0, 4, 4), 2 x 2 bins of 2 x 2 cells, 2 x 2 samples per bin, aligned=False:
    # the kernel samples at index coordinates 0.5, 1.5 (bin 0) and 2.5, 3.5 (bin 1); drawn +0.5: 1, 2, 3, 4
    x_edges, y_edges, points = viz.roi_align_sampling_points([0, 0, 4, 4], (2, 2), 1.0, 2, aligned=False)
    assert x_edges.tolist() == [0.5, 2.5, 4.5] and y_edges.tolist() == [0.5, 2.5, 4.5]
    assert points.shape == (2, 2, 4, 2)
    assert sorted(set(points[0, 1, :, 0].tolist())) == [3.0, 4.0]  # bin (row 0, column 1): x in the right half
    assert sorted(set(points[0, 1, :, 1].tolist())) == [1.0, 2.0]
    # aligned=True removes the half-pixel shift: the samples sit symmetrically inside the box
    _, _, aligned = viz.roi_align_sampling_points([0, 0, 4, 4], (2, 2), 1.0, 2, aligned=True)
    assert sorted(set(aligned[..., 0].ravel().tolist())) == [0.5, 1.5, 2.5, 3.5]
    # adaptive: ceil(roi / bins) samples per axis; (0, 0, 10, 4) in 2 x 2 bins -> ceil(5) x ceil(2) = 10 per bin
    _, _, adaptive = viz.roi_align_sampling_points([0, 0, 10, 4], (2, 2), 1.0, -1, aligned=True)
    assert adaptive.shape == (2, 2, 10, 2)


def test_roi_pool_bins_by_hand():
    from edudet import viz

    # (10, 13, 45, 42) at scale 1/4 -> (2.5, 3.25, 11.25, 10.5) -> rounded half away (3, 3, 11, 11): 9 cells,
    # bins of 4.5: [floor(0), ceil(4.5)) = [0, 5) and [floor(4.5), ceil(9)) = [4, 9), shifted by 3
    bins = viz.roi_pool_bins([10, 13, 45, 42], (2, 2), 0.25, (16, 16))
    assert bins.dtype == np.int64 and bins.shape == (2, 2, 4)
    assert bins[0, 0].tolist() == [3, 8, 3, 8] and bins[1, 1].tolist() == [7, 12, 7, 12]
    # clipped to the map: a RoI past the right edge ends at the width
    assert viz.roi_pool_bins([40, 0, 100, 8], (1, 1), 0.25, (16, 16))[0, 0].tolist() == [0, 3, 10, 16]


def test_helpers_return_labelled_axes(plt):
    from edudet import viz

    boxes = np.array([[0, 0, 10, 10], [5, 5, 20, 15]], dtype=np.float32)
    axes = [
        viz.draw_boxes(boxes, labels=["a", "b"], scores=[0.9, 0.1]),
        viz.draw_anchors(boxes),
        viz.draw_points(boxes[:, :2], values=[0.0, 1.0], colorbar=True),
        viz.draw_feature_grid((4, 5), stride=8, centers=True),
        viz.draw_sampling_grid([0, 0, 32, 32], (2, 2), 0.25, 2, aligned=True),
        viz.draw_roi_pool_bins([0, 0, 32, 32], (2, 2), 0.25, (8, 8)),
        viz.heatmap(np.eye(3), xlabels="abc", ylabels="xyz"),
        viz.draw_image(np.zeros((6, 8))),
        viz.image_axes(extent=(0, 0, 10, 10)),
    ]
    for ax in axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    # drawing onto a given ax returns that ax, and keeps the caller's title
    _, ax = plt.subplots()
    ax.set_title("mine")
    assert viz.draw_boxes(boxes, ax) is ax and ax.get_title() == "mine"
    assert len(ax.patches) == 2
    # y points down, as in an image
    assert viz.image_axes(extent=(0, 0, 10, 10)).yaxis_inverted()
    # empty input draws nothing and does not fail
    assert len(viz.draw_boxes(np.zeros((0, 4))).patches) == 0


def test_helpers_refuse_bad_input(plt):
    from edudet import viz

    with pytest.raises(ValueError, match="boxes"):
        viz.draw_boxes(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="labels"):
        viz.draw_boxes(np.zeros((2, 4)), labels=["only one"])
    with pytest.raises(ValueError, match="colors"):
        viz.draw_boxes(np.zeros((2, 4)), colors=["red"])
    with pytest.raises(ValueError, match="NaN"):
        viz.draw_boxes(np.array([[0, 0, np.nan, 1]]))
    with pytest.raises(ValueError, match="points"):
        viz.draw_points(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="values"):
        viz.heatmap(np.zeros(3))
    with pytest.raises(ValueError, match="image"):
        viz.draw_image(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="stride"):
        viz.draw_feature_grid((2, 2), stride=0)


def _ramp_maps(height, width):
    """(1, 2, H, W): channel 0 holds each pixel's column index, channel 1 its row index."""
    cols = np.tile(np.arange(width, dtype=np.float64), (height, 1))
    rows = np.tile(np.arange(height, dtype=np.float64)[:, None], (1, width))
    return np.stack([cols, rows])[None]


def _random_roi(rng):
    corner = rng.uniform(0, 120, 2)
    size = rng.uniform(0.2, 60, 2)
    return np.concatenate([corner, corner + size])


@pytest.mark.parity
def test_sampling_points_are_where_roi_align_reads():
    """On a ramp, bilinear interpolation is exact, so roi_align returns the mean sample position."""
    torch, torchvision = import_torchvision()
    from edudet import ops, viz

    height, width = 40, 50
    ramps = _ramp_maps(height, width)
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(200):
        roi = _random_roi(rng)
        scale = float(rng.choice([0.25, 0.5, 1.0]))
        ratio = int(rng.choice([-1, 0, 1, 2, 3]))
        aligned = bool(rng.integers(2))
        size = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        _, _, points = viz.roi_align_sampling_points(roi, size, scale, ratio, aligned)
        index = points - 0.5  # back to the kernel's coordinates (pixel centres at integers)
        if index.min() < 0 or index[..., 0].max() > width - 1 or index[..., 1].max() > height - 1:
            continue  # near the border the kernel clamps: the ramp is no longer exact there
        rois = np.concatenate([[0.0], roi])[None]
        theirs = torchvision.ops.roi_align(torch.from_numpy(ramps), torch.from_numpy(rois), size, scale, ratio,
                                           aligned).numpy()[0]
        ours = ops.roi_align(ramps, rois, size, scale, ratio, aligned)[0]
        for result in (theirs, ours):
            assert np.allclose(result[0], index[..., 0].mean(axis=-1), atol=1e-9)
            assert np.allclose(result[1], index[..., 1].mean(axis=-1), atol=1e-9)
        checked += 1
    assert checked > 50


@pytest.mark.parity
def test_roi_pool_bins_are_what_roi_pool_reads():
    torch, torchvision = import_torchvision()
    from edudet import ops, viz

    rng = np.random.default_rng(1)
    features = rng.standard_normal((1, 1, 40, 50))
    for _ in range(200):
        corner = rng.uniform(-10, 200, 2)
        roi = np.concatenate([corner, corner + rng.uniform(0, 80, 2)])
        scale = float(rng.choice([0.25, 0.5, 1.0]))
        size = (int(rng.integers(1, 7)), int(rng.integers(1, 7)))
        bins = viz.roi_pool_bins(roi, size, scale, features.shape)
        expected = np.array([[features[0, 0, r0:r1, c0:c1].max() if r1 > r0 and c1 > c0 else 0.0
                              for r0, r1, c0, c1 in row] for row in bins])
        rois = np.concatenate([[0.0], roi])[None]
        theirs = torchvision.ops.roi_pool(torch.from_numpy(features), torch.from_numpy(rois), size, scale).numpy()
        assert np.array_equal(theirs[0, 0], expected)
        assert np.array_equal(ops.roi_pool(features, rois, size, scale)[0, 0], expected)
