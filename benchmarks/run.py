"""Run every benchmark module and print the table: ``python -m edudet bench`` or ``python benchmarks/run.py``.

Options: ``--quick`` (smaller workloads, for a smoke run), ``--only nms,boxes`` (module names),
``--backends numba,cython``, ``--lessons`` (each lesson's run time instead; same as ``--only lessons``).
Numba compiles into a fresh cache directory so its compile time is measured.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edudet bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small workloads (smoke run)")
    parser.add_argument("--only", default="", help="comma-separated module names, e.g. boxes,nms")
    parser.add_argument("--backends", default="", help="comma-separated backends (default: every CPU one)")
    parser.add_argument("--warm-cache", action="store_true", help="keep numba's on-disk cache (skip compile timing)")
    parser.add_argument("--lessons", action="store_true", help="time each lesson's execution (not in the default run)")
    args = parser.parse_args(argv)
    if args.lessons or args.only == "lessons":
        sys.path.insert(0, str(HERE))
        import bench_lessons

        print(bench_lessons.report())
        return 0

    if not args.warm_cache:
        os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="edudet-bench-numba-")
    sys.path.insert(0, str(HERE))
    from harness import format_first_calls, format_table, run_case

    import edudet

    backends = [b for b in args.backends.split(",") if b] or [b for b in edudet.available_backends() if b != "cuda"]
    names = [n for n in args.only.split(",") if n] or sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py")
                                                    if p.stem != "bench_lessons")
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        tv_note = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        tv_note = "torchvision not installed: ratios are blank"
    print(f"edudet {edudet.__version__}; backends {backends}; {tv_note}; {os.cpu_count()} CPUs", flush=True)
    results = []
    for name in names:
        module = importlib.import_module(f"bench_{name}")
        for case in module.cases(quick=args.quick):
            result = run_case(case, backends)
            results.append(result)
            print(format_table([result], backends).splitlines()[-1], flush=True)
    print()
    print(format_table(results, backends))
    print()
    print("numba/cuda first calls (fresh cache: includes compilation)" if not args.warm_cache else "first calls")
    print(format_first_calls(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
