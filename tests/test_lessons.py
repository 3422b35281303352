"""The step-through lessons: each one runs top to bottom, draws, passes its own checks, and checks exercises.

Every lesson of the installed package (``edudet.lessons``: ``lessons/NN_topic.py``, jupytext percent
format) is executed once per test session with nbclient on the "python3" kernel (fixed seed, headless
matplotlib), as a learner gets it: every exercise left at ``...`` must run through. In the same kernel its
exercise cells are then replayed with the reference solutions (all must be judged right) and with a
typical wrong answer each (all must be judged wrong, with a specific message). Any error or failed assert
fails the test, and so does a lesson that shows no figure. The same executed notebooks are exported
(``--export``) and rendered as the HTML book (``--html``), whose pages, figures and links are checked, and
which a real headless Chromium loads. No test asserts a run time: `python -m edudet bench --lessons` reports
them. The lessons are also read as text: title cell, imports (edudet's public API, numpy, matplotlib and
the standard library only) and the closing "check yourself" cell of asserts. Last, `edudet.viz`, the
drawing helpers the lessons share: its two geometry rules by hand and against torchvision.
"""
from __future__ import annotations

import ast
import html
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import IN_CI, import_torchvision, require

from edudet.lessons import LESSON_DIR, lessons

ALL_LESSONS = lessons()  # the installed package's lessons (edudet.lessons), i.e. lessons/ in a clone
LESSONS = [lesson.path for lesson in ALL_LESSONS]
HANG_GUARD_S = 1200  # only stops a hung kernel or browser; run times are the benchmark's, never asserted
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


# ---------------------------------------------------------------------------------------------------------
# executing the lessons: once per test session, exercises replayed in the same kernel in two more modes
# ---------------------------------------------------------------------------------------------------------

RESULTS_MARK = "EDUDET-EXERCISE-RESULTS "


def _is_exercise_cell(cell) -> bool:
    return cell.cell_type == "code" and re.search(r"^\s*check\(", cell.source, flags=re.M) is not None


def _mode_cell(nbformat, mode: str):
    """Switch the checker's answers and record the outcomes from here on."""
    return nbformat.v4.new_code_cell(
        "import edudet.lessons.check as _checker\n"
        f"print({RESULTS_MARK!r} + __import__('json').dumps(_checker.results))\n"
        f"_checker.results.clear()\n_checker.use_answers({mode!r})")


class ExecutedLessons:
    """Each lesson executed once, lazily, shared by every test of the session.

    One kernel run per lesson: the seed cell, the lesson as a learner gets it (every exercise left at
    ``...``: it must run through), then the lesson's exercise cells again with the reference solutions
    (``use_answers("solution")``) and again with a typical wrong answer each (``"wrong"``). The replays reuse
    the lesson's state and cost next to nothing, so "every lesson twice" does not double the suite's time.
    `notebook(stem)` is the lesson's own cells with their outputs (what --export/--html write);
    `results(stem)` maps mode -> the checker's records.
    """

    def __init__(self):
        self._done: dict[str, tuple] = {}

    def run(self, lesson):
        if lesson.stem not in self._done:
            nbformat = _require("nbformat")
            _require("nbclient")
            _require("ipykernel")
            from edudet.lessons.book import execute_lesson, read_lesson

            notebook = read_lesson(lesson)
            own = len(notebook.cells)
            exercises = [cell for cell in notebook.cells if _is_exercise_cell(cell)]
            replay = [_mode_cell(nbformat, "solution"),
                      *[nbformat.v4.new_code_cell(c.source) for c in exercises],
                      _mode_cell(nbformat, "wrong"),
                      *[nbformat.v4.new_code_cell(c.source) for c in exercises],
                      _mode_cell(nbformat, "learner")]
            notebook.cells = [nbformat.v4.new_code_cell(SEED_CELL), *notebook.cells, *replay]
            # reproducible hashing; no answers mode inherited from the environment; a hang guard per cell
            # (not a time budget: lesson run times are the benchmark's, `python -m edudet bench --lessons`)
            execute_lesson(lesson, notebook, timeout=HANG_GUARD_S,
                           env={"PYTHONHASHSEED": "0", "EDUDET_LESSON_ANSWERS": "learner"})
            dumps = [output["text"] for cell in notebook.cells[1 + own:] for output in cell.get("outputs", [])
                     if output.get("name") == "stdout" and output["text"].startswith(RESULTS_MARK)]
            records = [json.loads(text[len(RESULTS_MARK):]) for text in dumps]
            results = dict(zip(["learner", "solution", "wrong"], records))
            notebook.cells = notebook.cells[1:1 + own]
            self._done[lesson.stem] = (notebook, results)
        return self._done[lesson.stem]

    def notebook(self, lesson):
        return self.run(lesson)[0]

    def results(self, lesson):
        return self.run(lesson)[1]

    def all(self) -> dict:
        return {lesson.stem: self.notebook(lesson) for lesson in ALL_LESSONS}


@pytest.fixture(scope="session")
def executed():
    return ExecutedLessons()


@pytest.mark.slow
@pytest.mark.parametrize("lesson", ALL_LESSONS, ids=lambda lesson: lesson.stem)
def test_lesson_runs_draws_and_its_exercises_are_checked_both_ways(lesson, executed):
    from edudet.lessons.check import exercises_of

    notebook, results = executed.run(lesson)  # raises CellExecutionError, naming the cell, on any failure
    assert _image_outputs(notebook) > 0, f"{lesson.stem} showed no figure (no display_data with image/png)"
    names = set(exercises_of(lesson.number))
    assert set(results) == {"learner", "solution", "wrong"}, f"{lesson.stem}: the replays did not all run"
    for mode, expected_status in (("learner", "unanswered"), ("solution", "right"), ("wrong", "wrong")):
        records = results[mode]
        assert {r["name"] for r in records} == names, (
            f"{lesson.stem} ({mode}): checked {sorted(r['name'] for r in records)}, registered {sorted(names)}")
        for record in records:
            assert record["status"] == expected_status, f"{lesson.stem} ({mode}): {record}"
    for record in results["wrong"]:  # the feedback names the slip, not just "wrong"
        assert "which is not it" not in record["message"] and len(record["message"]) > 30, record


# ---------------------------------------------------------------------------------------------------------
# the checker itself
# ---------------------------------------------------------------------------------------------------------

@pytest.fixture
def checker():
    import edudet.lessons.check as module

    saved = list(module.results)
    module.results.clear()
    module.use_answers("learner")
    yield module
    module.use_answers("learner")
    module.results[:] = saved


def test_every_lesson_has_two_exercises_it_checks(checker):
    from edudet.lessons.exercises import EXERCISES

    for lesson in ALL_LESSONS:
        names = set(checker.exercises_of(lesson.number))
        assert len(names) >= 2, f"{lesson.stem} has {len(names)} exercises in edudet.lessons.exercises; needs 2"
        text = lesson.path.read_text()
        for name in names:
            assert f'check("{name}", ' in text, f"{lesson.stem} never checks its exercise {name!r}"
    numbers = {lesson.number for lesson in ALL_LESSONS}
    assert {ex.lesson for ex in EXERCISES.values()} <= numbers, "an exercise belongs to no lesson"


def test_checker_feedback_by_hand(checker, capsys):
    checker.check("iou_by_hand", 1 / 7)
    checker.check("iou_by_hand", 4 / 32)         # union 16 + 16 with the overlap counted twice
    checker.check("iou_by_hand", 0.3)            # no known slip: says it is not it
    checker.check("iou_by_hand", "a lot")        # not a number: judged, not raised
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[x] iou_by_hand: right")
    assert out[1].startswith("[!] iou_by_hand: not yet: you gave 0.125: did you forget to subtract the "
                             "intersection") and 'hint("iou_by_hand")' in out[1]
    assert "you gave 0.3, which is not it" in out[2] and "you gave 'a lot'" in out[3]
    assert [r["status"] for r in checker.results] == ["right", "wrong", "wrong", "wrong"]


def test_checker_functions_unanswered_and_hints(checker, capsys):
    def unanswered(a, b):
        ...

    def crashes(a, b):
        return 1 / 0

    def right(a, b):
        inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    def unclamped(a, b):  # two negative overlaps make a positive "intersection" of boxes that do not touch
        inter = (min(a[2], b[2]) - max(a[0], b[0])) * (min(a[3], b[3]) - max(a[1], b[1]))
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    for answer in (unanswered, ..., crashes, right, unclamped):
        checker.check("iou_function", answer)
    out = capsys.readouterr().out.splitlines()
    assert [r["status"] for r in checker.results] == ["unanswered", "unanswered", "wrong", "right", "wrong"]
    assert "not answered yet" in out[0] and "not answered yet" in out[1]
    assert "raised ZeroDivisionError" in out[2]
    # (0, 0, 2, 2) vs (3, 3, 5, 5): (-1) * (-1) = 1 -> 1 / (4 + 4 - 1) = 1/7 instead of 0
    assert "for ([0, 0, 2, 2], [3, 3, 5, 5]) it should return 0; yours returned 0.142857: two negative " \
           "overlaps" in out[4]
    checker._hints_given.pop("nms_keep", None)
    for _ in range(4):
        checker.hint("nms_keep")
    hints = capsys.readouterr().out.splitlines()
    assert hints[0].startswith("nms_keep, hint 1 of 2:") and hints[1].startswith("nms_keep, hint 2 of 2:")
    assert hints[2].startswith("nms_keep: no more hints") and hints[3].startswith("nms_keep: no more hints")


def test_checker_modes_and_errors(checker, capsys):
    from edudet.lessons.exercises import EXERCISES

    checker.use_answers("solution")
    for name in EXERCISES:
        checker.check(name, ...)
    checker.use_answers("wrong")
    for name in EXERCISES:
        checker.check(name, ...)
    statuses = [r["status"] for r in checker.results]
    assert statuses == ["right"] * len(EXERCISES) + ["wrong"] * len(EXERCISES)
    checker.use_answers("solution")
    checker.check("nms_tie", 1)  # a learner's own answer is judged in every mode
    assert checker.results[-1]["status"] == "wrong"
    with pytest.raises(ValueError, match="mode must be one of"):
        checker.use_answers("answers")
    with pytest.raises(KeyError, match="no exercise named 'nope'"):
        checker.check("nope", 1)
    capsys.readouterr()


# ---------------------------------------------------------------------------------------------------------
# --export, --html, the book in a real browser, and the one command to JupyterLab
# ---------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def book(executed, tmp_path_factory):
    """The exported notebooks and the HTML book, written from the session's executed lessons."""
    _require("nbconvert")
    from edudet.lessons.book import export_notebooks, write_html_book

    before = sorted(p.name for p in LESSON_DIR.iterdir())
    notebooks = executed.all()
    root = tmp_path_factory.mktemp("lessons-book")
    exported = export_notebooks(root / "notebooks", executed=notebooks)
    index = write_html_book(root / "html", executed=notebooks)
    assert sorted(p.name for p in LESSON_DIR.iterdir()) == before, "executing or exporting wrote into lessons/"
    return exported, index


@pytest.mark.slow
def test_export_writes_executed_notebooks(book):
    nbformat = _require("nbformat")
    exported, _ = book
    assert [p.stem for p in exported] == [lesson.stem for lesson in ALL_LESSONS]
    for path in exported:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(cell.execution_count for cell in code), f"{path.name}: a cell was not executed"
        assert _image_outputs(notebook) > 0, f"{path.name}: no figure saved"
        assert "all checks passed" in "".join(o.get("text", "") for o in code[-1].outputs), path.name


def _local_links(page: str) -> list[str]:
    return [h for h in re.findall(r'href="([^"#]+)', page) if not re.match(r"[a-z]+:", h)]


@pytest.mark.slow
def test_html_book_pages_figures_and_links(book, executed):
    _, index = book
    page = index.read_text()
    for lesson in ALL_LESSONS:
        assert f'href="{lesson.stem}.html"' in page and lesson.title in page, lesson.stem
        assert html.escape(lesson.summary) in page, f"index lacks {lesson.stem}'s summary"
    for lesson in ALL_LESSONS:
        path = index.parent / f"{lesson.stem}.html"
        text = path.read_text()
        figures = len(re.findall(r'<img[^>]+src="data:image/png;base64,', text))
        assert figures == _image_outputs(executed.notebook(lesson)) > 0, f"{path.name}: {figures} inline figures"
        assert "<script" not in text.lower(), f"{path.name}: the book is static (no scripts)"
        assert not re.search(r'(src|href)="https?://[^"]+\.(js|css|mjs)', text), f"{path.name} loads a remote file"
        links = _local_links(text)
        assert "index.html" in links, f"{path.name} has no link back to the index"
        for link in links:
            assert (index.parent / link).exists(), f"{path.name} links to a missing {link}"
        assert lesson.title in text


def _chromium() -> str:
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if IN_CI:
        pytest.fail("the book's browser test needs Chromium in CI (apt-get install -y chromium)")
    pytest.skip("Chromium not installed (apt-get install -y chromium)")


def _headless(chromium: str, url: str, *args: str, workdir: Path) -> subprocess.CompletedProcess:
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--enable-logging=stderr", "--v=0", f"--user-data-dir={workdir / 'profile'}",
               "--no-first-run", "--allow-file-access-from-files", *args, url]
    # a hang guard, not a time budget
    return subprocess.run(command, capture_output=True, text=True, timeout=HANG_GUARD_S, check=False)


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line
            or "Failed to load resource" in line]


@pytest.mark.slow
def test_book_renders_in_headless_chromium(book, tmp_path):
    chromium = _chromium()
    _, index = book
    dom = _headless(chromium, index.as_uri(), "--dump-dom", workdir=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for lesson in ALL_LESSONS:
        assert f'href="{lesson.stem}.html"' in dom.stdout, f"the rendered index has no link to {lesson.stem}"
    assert not _console_errors(dom.stderr), _console_errors(dom.stderr)
    # a lesson page, with a probe that counts the figures the browser actually decoded once the page loaded
    lesson = next(x for x in ALL_LESSONS if x.number == 9)
    page = (index.parent / f"{lesson.stem}.html").read_text()
    probe = ("<script>addEventListener('load', () => { const imgs = [...document.images]; "
             "document.title = 'figures ' + imgs.filter(i => i.complete && i.naturalWidth > 0).length + ' of ' "
             "+ imgs.length; });</script>")
    probed = index.parent / "probe.html"
    probed.write_text(page.replace("</body>", probe + "</body>", 1))
    try:
        result = _headless(chromium, probed.as_uri(), "--dump-dom", "--virtual-time-budget=5000", workdir=tmp_path)
        title = re.search(r"<title>(figures (\d+) of (\d+))</title>", result.stdout)
        assert title, f"no probe result in the DOM: {result.stderr[-2000:]}"
        assert int(title.group(2)) == int(title.group(3)) > 0, title.group(1)
        assert not _console_errors(result.stderr), _console_errors(result.stderr)
    finally:
        probed.unlink()
    shot = Path(os.environ.get("EDUDET_BOOK_SCREENSHOT_DIR", tmp_path))
    for name, url in (("index", index.as_uri()), (lesson.stem, (index.parent / f"{lesson.stem}.html").as_uri())):
        png = shot / f"book_{name}.png"
        result = _headless(chromium, url, f"--screenshot={png}", "--window-size=1280,1600",
                           "--hide-scrollbars", workdir=tmp_path)
        assert png.exists() and png.stat().st_size > 10_000, f"no screenshot of {name}: {result.stderr[-2000:]}"
        assert not _console_errors(result.stderr), _console_errors(result.stderr)


def test_jupyterlab_and_the_jupytext_contents_manager_resolve(tmp_path):
    """The lessons extra: JupyterLab answers, jupytext's contents manager imports, --open sets them up."""
    _require("jupyterlab")
    jupytext = _require("jupytext")
    assert jupytext.TextFileContentsManager is not None
    result = subprocess.run([sys.executable, "-m", "jupyter", "lab", "--help"], capture_output=True, text=True,
                            timeout=HANG_GUARD_S, check=False)
    assert result.returncode == 0 and "ServerApp" in result.stdout + result.stderr, result.stderr[-2000:]
    target = tmp_path / "my-lessons"
    result = subprocess.run([sys.executable, "-m", "edudet", "lessons", "--open", str(target), "--dry-run"],
                            capture_output=True, text=True, timeout=HANG_GUARD_S, check=False)
    assert result.returncode == 0, result.stderr
    assert "contents_manager_class=jupytext.TextFileContentsManager" in result.stdout
    assert sorted(p.name for p in target.glob("*.py")) == [lesson.path.name for lesson in ALL_LESSONS]
    settings = target / ".jupyterlab-settings" / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
    assert json.loads(settings.read_text()) == {"defaultViewers": {"python": "Jupytext Notebook"}}
    # a learner's edits survive a second --open
    first = target / ALL_LESSONS[0].path.name
    first.write_text(first.read_text() + "\n# my notes\n")
    subprocess.run([sys.executable, "-m", "edudet", "lessons", "--open", str(target), "--dry-run"],
                   capture_output=True, text=True, timeout=HANG_GUARD_S, check=True)
    assert first.read_text().endswith("# my notes\n")


@pytest.mark.slow
def test_jupyter_server_opens_a_lesson_as_a_notebook(tmp_path):
    """Start the server --open would start (bounded, then killed) and read a lesson through its contents API."""
    _require("jupyterlab")
    _require("jupytext")
    import socket
    import urllib.request

    from edudet.lessons.book import jupyter_lab_command, open_in_jupyter

    open_in_jupyter(tmp_path, dry_run=True)
    argv, env = jupyter_lab_command(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv += ["--no-browser", f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1",
             "--IdentityProvider.token=edudet-test", "--ServerApp.open_browser=False"]
    server = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              cwd=tmp_path)
    name = ALL_LESSONS[0].path.name
    url = f"http://127.0.0.1:{port}/api/contents/{name}?type=notebook&content=1&token=edudet-test"
    try:
        model = None
        for _ in range(600):  # up to ~5 min for the server to come up on a busy machine (a hang guard)
            if server.poll() is not None:
                break
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    model = json.loads(response.read())
                break
            except OSError:
                time.sleep(0.5)
        assert model is not None, f"the server did not answer: {server.poll()}"
        assert model["type"] == "notebook" and model["name"] == name
        cells = model["content"]["cells"]
        assert cells[0]["cell_type"] == "markdown" and cells[0]["source"].startswith("# " + ALL_LESSONS[0].title)
        assert not list(tmp_path.glob("*.ipynb")), "opening a lesson wrote an .ipynb next to it"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


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
