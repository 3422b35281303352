"""The edudet command line: ``python -m edudet <command>`` (also the ``edudet`` console script).

Commands:
  demo      run a detector on a sample image, print the stage table, write an annotated PNG
  bench     time every op on every CPU backend against torchvision (benchmarks/ in a source checkout)
  lessons   list the step-through lessons; --open (JupyterLab), --export DIR (.ipynb), --html DIR (a book)
  convert   convert a torchvision checkpoint (.pth) to edudet's .npz (the one command that needs torch)
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

# command -> "module:function" taking argv (list of str) and returning an exit code
COMMANDS = {
    "demo": "edudet.demo:main",
    "bench": "edudet.__main__:bench",
    "lessons": "edudet.lessons.book:main",
    "convert": "edudet.models.convert:main",
}


def _source_root() -> Path:
    return Path(__file__).resolve().parent.parent


def bench(argv: list[str]) -> int:
    bench_dir = _source_root() / "benchmarks"
    if not (bench_dir / "run.py").exists():
        print("edudet bench: benchmarks/ is not next to this installation; run it from a source checkout "
              "(pip install -e .)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(bench_dir))
    import run

    return run.main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    target = COMMANDS.get(command)
    if target is None:
        print(f"edudet: unknown command {command!r}; choose one of {sorted(COMMANDS)}", file=sys.stderr)
        return 2
    module, _, func = target.partition(":")
    try:
        fn = getattr(importlib.import_module(module), func)
    except ImportError as err:
        print(f"edudet {command}: not available yet ({err})", file=sys.stderr)
        return 2
    return int(fn(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
