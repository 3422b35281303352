"""Exercises with feedback: ``check(name, answer)`` says at once whether an answer is right, and why not.

In a lesson::

    from edudet.lessons.check import check, hint

    keep = ...                      # your answer: replace the ...
    check("nms_keep", keep)         # prints a tick, or what is wrong and a way to find out
    hint("nms_keep")                # one more hint each time you ask

An answer left as ``...`` (or a function whose body is still ``...``) is "not answered yet": the lesson
goes on, nothing fails. `check` never raises on a wrong answer; it prints, and records the outcome in
`results` (a list of dicts: name, lesson, status "right" | "wrong" | "unanswered", message).

The exercises themselves (expected answers, typical mistakes and what to say about each, hints, a
reference solution and a typical wrong answer) are in `edudet.lessons.exercises`. The lesson tests use the
last two: ``use_answers("solution")`` makes every unanswered exercise take its reference solution (all must
pass), ``use_answers("wrong")`` its typical wrong answer (the checker must say so). The environment
variable ``EDUDET_LESSON_ANSWERS`` sets the same mode before the lesson starts.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["check", "hint", "use_answers", "results", "Exercise", "exercises_of"]

MODES = ("learner", "solution", "wrong")
results: list[dict] = []
_mode = os.environ.get("EDUDET_LESSON_ANSWERS", "learner") or "learner"
_hints_given: dict[str, int] = {}


@dataclass
class Exercise:
    """One exercise: its lesson number, the question, how to judge an answer, hints, and two test answers.

    expected: the right value, or for a function exercise a list of ``(args, expected_result)`` cases.
    mistakes: ``(wrong_value, message)`` pairs, or for a function exercise ``(wrong_function, message)``:
    when an answer equals the wrong value (or behaves like the wrong function on the failing case), the
    learner is told that message, which names the likely slip.
    """

    lesson: int
    question: str
    expected: Any
    hints: Sequence[str]
    solution: Any
    wrong: Any
    mistakes: Sequence[tuple[Any, str]] = ()
    kind: str = "value"            # "value" | "function"
    tolerance: float = 1e-3        # relative (and absolute) tolerance for numbers
    unordered: bool = False        # a list whose order does not matter (e.g. kept indices)
    explain: str = ""              # said after a right answer: the why, in one line
    name: str = field(default="", init=False)


def use_answers(mode: str) -> None:
    """What unanswered exercises are checked with: "learner" (nothing), "solution" or "wrong" (tests)."""
    global _mode
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    _mode = mode


def _exercise(name: str) -> Exercise:
    from .exercises import EXERCISES

    if name not in EXERCISES:
        raise KeyError(f"no exercise named {name!r}; the exercises are {sorted(EXERCISES)}")
    return EXERCISES[name]


def exercises_of(lesson: int) -> dict[str, Exercise]:
    """The exercises of lesson number `lesson`, by name."""
    from .exercises import EXERCISES

    return {name: ex for name, ex in EXERCISES.items() if ex.lesson == lesson}


def _unanswered(answer, exercise: Exercise) -> bool:
    if answer is ... or answer is None:
        return True
    if exercise.kind == "function" and callable(answer):
        args = exercise.expected[0][0]
        try:
            return answer(*args) in (None, ...)
        except Exception:  # a learner's half-written function: judged (and its error shown) below
            return False
    return False


def _same(answer, expected, exercise: Exercise) -> bool:
    """Equal within the tolerance for numbers, element by element for sequences."""
    if isinstance(expected, str) or isinstance(answer, str):
        return str(answer).strip().lower() == str(expected).strip().lower()
    if isinstance(expected, (bool, np.bool_)):
        return isinstance(answer, (bool, np.bool_)) and bool(answer) == bool(expected)
    if isinstance(expected, (int, float, np.number)):
        try:
            return math.isclose(float(answer), float(expected), rel_tol=exercise.tolerance,
                                abs_tol=exercise.tolerance)
        except (TypeError, ValueError):
            return False
    try:
        a = np.asarray(answer, dtype=float)
        e = np.asarray(expected, dtype=float)
    except (TypeError, ValueError):
        return False
    if exercise.unordered:
        a, e = np.sort(a.ravel()), np.sort(e.ravel())
    return a.shape == e.shape and bool(np.allclose(a, e, rtol=exercise.tolerance, atol=exercise.tolerance))


def _judge_value(answer, exercise: Exercise) -> str | None:
    if _same(answer, exercise.expected, exercise):
        return None
    for wrong, message in exercise.mistakes:
        if _same(answer, wrong, exercise):
            return f"you gave {_show(answer)}: {message}"
    return f"you gave {_show(answer)}, which is not it"


def _judge_function(function: Callable, exercise: Exercise) -> str | None:
    for args, expected in exercise.expected:
        shown = ", ".join(_show(a) for a in args)
        try:
            got = function(*args)
        except Exception as error:  # the learner's code: report, never raise
            return f"for ({shown}) your function raised {type(error).__name__}: {error}"
        if _same(got, expected, exercise):
            continue
        message = f"for ({shown}) it should return {_show(expected)}; yours returned {_show(got)}"
        for wrong_function, why in exercise.mistakes:
            try:
                if _same(got, wrong_function(*args), exercise):
                    return f"{message}: {why}"
            except Exception:
                continue
        return message
    return None


def _show(value) -> str:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value)


def check(name: str, answer) -> None:
    """Judge `answer` to exercise `name` and print the verdict (never raises on a wrong answer)."""
    exercise = _exercise(name)
    if _unanswered(answer, exercise):
        if _mode == "learner":
            print(f"[ ] {name}: not answered yet. Replace the `...` with your answer and run the cell again; "
                  f'hint("{name}") gives a hint.')
            results.append(dict(name=name, lesson=exercise.lesson, status="unanswered", message=""))
            return
        answer = exercise.solution if _mode == "solution" else exercise.wrong
    judge = _judge_function if exercise.kind == "function" else _judge_value
    problem = judge(answer, exercise)
    if problem is None:
        print(f"[x] {name}: right. {exercise.explain}".rstrip())
        results.append(dict(name=name, lesson=exercise.lesson, status="right", message=exercise.explain))
    else:
        print(f"[!] {name}: not yet: {problem}. Try again, or ask for a hint: hint(\"{name}\")")
        results.append(dict(name=name, lesson=exercise.lesson, status="wrong", message=problem))


def hint(name: str) -> None:
    """Print the next hint of exercise `name` (each call gives one more; the last one nearly answers it)."""
    exercise = _exercise(name)
    given = _hints_given.get(name, 0)
    hints = list(exercise.hints)
    if given >= len(hints):
        print(f"{name}: no more hints; the last one was: {hints[-1]}")
        return
    _hints_given[name] = given + 1
    print(f"{name}, hint {given + 1} of {len(hints)}: {hints[given]}")
