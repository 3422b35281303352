"""``python -m edudet lessons``: list the lessons, open them in JupyterLab, export them executed, or as a book.

    python -m edudet lessons                 # list them (number, title, summary)
    python -m edudet lessons --open [DIR]    # copy them to DIR (default ./edudet-lessons), start JupyterLab
    python -m edudet lessons --export DIR    # executed notebooks, outputs and figures included: DIR/NN_topic.ipynb
    python -m edudet lessons --html DIR      # the same, rendered to static pages + DIR/index.html

Everything reads the lessons installed with the package (``edudet.lessons``), so it works from a wheel as
from a clone, and nothing is written into the package: lessons execute in a temporary directory and
``--open`` works on a copy (files already there are kept, so a learner's answers survive a second run).
``--export``/``--html`` need the ``lessons`` extra (jupytext, nbclient, nbconvert, ipykernel), ``--open``
JupyterLab too: ``pip install "edudet[lessons]"``.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import Lesson, lessons

__all__ = ["main", "read_lesson", "execute_lesson", "export_notebooks", "write_html_book", "jupyter_lab_command"]

EXTRA = 'pip install "edudet[lessons]"  (or pip install -e ".[lessons]" in a clone)'
# JupyterLab opens a .py file in its text editor unless told otherwise; this makes a double click open the
# lesson as a notebook (jupytext's "Jupytext Notebook" viewer), for this server only
DOCMANAGER_SETTINGS = {"defaultViewers": {"python": "Jupytext Notebook"}}
PAGE_STYLE = """<style>
  body { max-width: 1080px; margin: 0 auto; padding: 0 16px; }
  nav.edudet-book { font: 15px/1.6 system-ui, sans-serif; padding: 12px 0; border-bottom: 1px solid #ddd; }
  nav.edudet-book a { margin-right: 1.5em; }
  .jp-OutputArea-output img { max-width: 100%; height: auto; }
</style>"""


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise SystemExit(f"edudet lessons: this needs {module} ({error}); install the lessons extra: {EXTRA}")


def read_lesson(lesson: Lesson):
    """The lesson as an nbformat notebook (jupytext reads the percent-format .py)."""
    return _need("jupytext").read(lesson.path)


def execute_lesson(lesson: Lesson, notebook=None, *, timeout: int = 900, workdir: str | Path | None = None,
                   env: dict | None = None):
    """Run a lesson top to bottom on the ``python3`` kernel; returns the notebook with its outputs.

    The kernel runs in `workdir` (a fresh temporary directory by default, so nothing lands in the package),
    with matplotlib headless. Raises nbclient's ``CellExecutionError`` naming the cell on any error.
    """
    nbclient = _need("nbclient")
    _need("ipykernel")
    notebook = read_lesson(lesson) if notebook is None else notebook
    kernel_env = dict(os.environ, MPLBACKEND="Agg", **(env or {}))
    with tempfile.TemporaryDirectory(prefix="edudet-lesson-") as tmp:
        client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=timeout,
                                         resources={"metadata": {"path": str(workdir or tmp)}})
        # nbclient starts the kernel with the environment it is given (inherited when None)
        client.execute(env=kernel_env)
    return notebook


def _executed(selected: list[Lesson], executed: dict | None, verbose: bool):
    import time

    for lesson in selected:
        if executed is not None and lesson.stem in executed:
            yield lesson, executed[lesson.stem]
            continue
        start = time.perf_counter()
        notebook = execute_lesson(lesson)
        if verbose:
            print(f"  executed {lesson.stem} in {time.perf_counter() - start:.1f} s", flush=True)
        yield lesson, notebook


def export_notebooks(directory, selected: list[Lesson] | None = None, executed: dict | None = None,
                     verbose: bool = False) -> list[Path]:
    """Write every lesson, executed, as ``directory/NN_topic.ipynb``; returns the paths.

    `executed` ({stem: notebook}) reuses notebooks already executed (the tests execute each lesson once).
    """
    nbformat = _need("nbformat")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for lesson, notebook in _executed(selected or lessons(), executed, verbose):
        path = directory / f"{lesson.stem}.ipynb"
        nbformat.write(notebook, path)
        written.append(path)
    return written


def _nav(index: int, selected: list[Lesson]) -> str:
    links = ['<a href="index.html">All lessons</a>']
    if index > 0:
        links.append(f'<a href="{selected[index - 1].stem}.html">&larr; {html.escape(selected[index - 1].title)}</a>')
    if index + 1 < len(selected):
        links.append(f'<a href="{selected[index + 1].stem}.html">{html.escape(selected[index + 1].title)} &rarr;</a>')
    return f'<nav class="edudet-book">{" ".join(links)}</nav>'


def _static_page(body: str, nav: str) -> str:
    """nbconvert's page with its scripts removed (the book is static and offline: no CDN, no JS) and a nav bar."""
    body = re.sub(r"<script\b[^>]*>.*?</script>", "", body, flags=re.S | re.I)
    body = body.replace("</head>", PAGE_STYLE + "\n</head>", 1)
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + "\n" + nav, body, count=1)


def write_html_book(directory, selected: list[Lesson] | None = None, executed: dict | None = None,
                    verbose: bool = False) -> Path:
    """Render every executed lesson to ``directory/NN_topic.html`` (figures inline) plus an index; returns it."""
    nbconvert = _need("nbconvert")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    selected = selected or lessons()
    exporter = nbconvert.HTMLExporter(template_name="lab")  # figures are embedded as data: URIs
    for index, (lesson, notebook) in enumerate(_executed(selected, executed, verbose)):
        body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": lesson.heading}})
        (directory / f"{lesson.stem}.html").write_text(_static_page(body, _nav(index, selected)), encoding="utf-8")
    items = "\n".join(
        f'  <li><a href="{lesson.stem}.html">{lesson.number}. {html.escape(lesson.title)}</a>'
        f'<p class="summary">{html.escape(lesson.summary)}</p></li>' for lesson in selected)
    index_page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edudet lessons</title>
<style>
  body {{ max-width: 860px; margin: 2em auto; padding: 0 16px; font: 17px/1.5 system-ui, sans-serif; color: #222; }}
  ol {{ list-style: none; padding: 0; }} li {{ margin: 0 0 1em; }} li a {{ font-size: 1.15em; font-weight: 600; }}
  p.summary {{ margin: 0.2em 0 0; color: #555; }}
</style>
</head>
<body>
<h1>edudet lessons</h1>
<p>The building blocks of object detectors, computed by hand, drawn and checked. Each lesson was executed
to make this page; open the same lessons as notebooks with <code>python -m edudet lessons --open</code>.</p>
<ol>
{items}
</ol>
</body>
</html>
"""
    index_path = directory / "index.html"
    index_path.write_text(index_page, encoding="utf-8")
    return index_path


def jupyter_lab_command(directory) -> tuple[list[str], dict]:
    """The command (argv) and environment that start JupyterLab on `directory` with jupytext's contents manager."""
    directory = Path(directory).resolve()
    settings = directory / ".jupyterlab-settings"
    argv = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={directory}",
            "--ServerApp.contents_manager_class=jupytext.TextFileContentsManager"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers run as root; JupyterLab refuses unless told
        argv.append("--allow-root")
    return argv, dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings))


def open_in_jupyter(directory, dry_run: bool = False) -> int:
    """Copy the lessons to `directory` (keeping files already there) and start JupyterLab on it."""
    _need("jupytext")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for lesson in lessons():
        target = directory / lesson.path.name
        if not target.exists():
            shutil.copyfile(lesson.path, target)
    plugin = directory / ".jupyterlab-settings" / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
    plugin.parent.mkdir(parents=True, exist_ok=True)
    plugin.write_text(json.dumps(DOCMANAGER_SETTINGS, indent=2))
    argv, env = jupyter_lab_command(directory)
    print(f"lessons in {directory.resolve()} (double-click one: it opens as a notebook)")
    print(" ".join(argv))
    if dry_run:
        return 0
    try:
        return subprocess.call(argv, env=env)
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edudet lessons", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--open", nargs="?", const="edudet-lessons", metavar="DIR",
                        help="copy the lessons to DIR (default ./edudet-lessons) and start JupyterLab there")
    action.add_argument("--export", metavar="DIR", help="write the executed notebooks (.ipynb) to DIR")
    action.add_argument("--html", metavar="DIR", help="write the executed lessons as static HTML pages + index")
    parser.add_argument("--only", default="", help="comma-separated lesson numbers or stems, e.g. 1,4")
    parser.add_argument("--dry-run", action="store_true", help="with --open: print the command, start nothing")
    args = parser.parse_args(argv)

    selected = lessons()
    if not selected:
        print("edudet lessons: no lessons found in the installed package", file=sys.stderr)
        return 2
    if args.only:
        wanted = {w.strip() for w in args.only.split(",") if w.strip()}
        selected = [x for x in selected if x.stem in wanted or str(x.number) in wanted or f"{x.number:02d}" in wanted]
        if not selected:
            print(f"edudet lessons: --only {args.only!r} matches no lesson", file=sys.stderr)
            return 2
    if args.open is not None:
        return open_in_jupyter(args.open, dry_run=args.dry_run)
    if args.export:
        paths = export_notebooks(args.export, selected, verbose=True)
        print(f"wrote {len(paths)} executed notebooks to {Path(args.export).resolve()}")
        return 0
    if args.html:
        index = write_html_book(args.html, selected, verbose=True)
        print(f"wrote the book: {index.resolve()}")
        return 0
    for lesson in selected:
        print(f"{lesson.stem:32s} {lesson.heading}")
    print("\nOpen them in JupyterLab:  python -m edudet lessons --open   (needs the lessons extra: "
          f"{EXTRA})\nExecuted notebooks: --export DIR; a static HTML book: --html DIR")
    return 0
