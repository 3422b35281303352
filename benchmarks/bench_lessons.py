"""Each lesson's run time: ``python -m edudet bench --lessons`` (or ``--only lessons``).

A lesson is executed once, top to bottom, as ``python -m edudet lessons --export`` executes it (a fresh
``python3`` kernel, headless matplotlib, exercises left unanswered), and timed from kernel start to the last
cell. This is where lesson run times are reported; the tests never assert one. Not an op race: no
torchvision column, and not part of the default ``edudet bench`` run (about ten minutes on 2 cores).
"""
from __future__ import annotations

import time


def report(only: list[str] | None = None) -> str:
    """Execute every lesson (or those whose number or stem is in `only`) once; returns a Markdown table."""
    from edudet.lessons import lessons
    from edudet.lessons.book import execute_lesson

    rows = ["| lesson | run s | code cells | figures |", "|---|---|---|---|"]
    total = 0.0
    for lesson in lessons():
        if only and lesson.stem not in only and str(lesson.number) not in only:
            continue
        start = time.perf_counter()
        try:
            notebook = execute_lesson(lesson)
        except Exception as error:  # one failing lesson is a row of the report, not the end of it
            first_line = str(error).strip().splitlines()[-1][:120] if str(error).strip() else type(error).__name__
            rows.append(f"| {lesson.stem} | failed after {time.perf_counter() - start:.1f} s: {first_line} | | |")
            print(rows[-1], flush=True)
            continue
        seconds = time.perf_counter() - start
        total += seconds
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        figures = sum(1 for cell in code for output in cell.get("outputs", [])
                      if "image/png" in output.get("data", {}))
        rows.append(f"| {lesson.stem} | {seconds:.1f} | {len(code)} | {figures} |")
        print(rows[-1], flush=True)
    rows.append(f"| all | {total:.1f} | | |")
    return "\n".join(rows)


def cases(quick: bool):
    """No op cases: lessons are timed by `report` (run.py calls it for ``--lessons`` / ``--only lessons``)."""
    return iter(())
