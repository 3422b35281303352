"""The step-through lessons, shipped inside the package as ``edudet.lessons``.

Each ``NN_topic.py`` here is a jupytext percent-format notebook (plain Python a learner can also read as
text). `lessons()` lists them; `edudet.lessons.check` gives their exercises immediate feedback;
`edudet.lessons.book` is ``python -m edudet lessons`` (list, ``--open`` in JupyterLab, ``--export`` executed
notebooks, ``--html`` a static book).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["LESSON_DIR", "Lesson", "lessons"]

LESSON_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Lesson:
    """One lesson file: ``path``, ``stem`` (``"04_nms_step_by_step"``), ``number``, ``title`` and ``summary``."""

    path: Path
    stem: str
    number: int
    title: str
    summary: str

    @property
    def heading(self) -> str:
        """The title cell's first line: ``"<title>: <summary>"``."""
        return f"{self.title}: {self.summary}" if self.summary else self.title


def lessons() -> list[Lesson]:
    """Every ``NN_topic.py`` lesson, in order, with the title and summary of its first markdown line."""
    found = []
    for path in sorted(LESSON_DIR.glob("[0-9][0-9]_*.py")):
        heading = next((line[4:].strip() for line in path.read_text(encoding="utf-8").splitlines()
                        if line.startswith("# # ")), path.stem)
        title, _, summary = heading.partition(": ")
        found.append(Lesson(path, path.stem, int(path.name[:2]), title.strip(), summary.strip()))
    return found
