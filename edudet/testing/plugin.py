"""edudet's pytest plugin, loaded in every pytest run where edudet is installed (entry point ``pytest11``).

It adds, and changes nothing for a test that does not ask for them:

- ``--edudet-extreme``: the strategies of `edudet.testing.strategies` called with ``extreme=None`` (their
  default) draw huge, tiny and subnormal coordinates too (also ``EDUDET_EXTREME=1`` in the environment);
- ``--edudet-backends=numpy,numba``: restrict the backends the marker below runs over;
- the marker ``@pytest.mark.edudet_backends("nms")``: runs the test once per edudet backend usable here for
  that op (a ``backend`` argument receives "numpy", "numba", "cython", "cuda" in turn); with several op
  names, the backends usable for all of them; with no name, every backend usable here;
- fixtures: ``edudet_extreme`` (bool: whether extreme values are on), ``edudet_strategies`` (the strategies
  module, with those settings) and ``edudet_backend_names`` (the backends the marker would use here).

Importing this module imports neither edudet's kernels, numpy, nor hypothesis: it must stay cheap and work
without hypothesis. The fixtures that need hypothesis say so when it is missing.
"""
from __future__ import annotations

import pytest

MARKER = "edudet_backends"
_EXTREME_BEFORE = pytest.StashKey[bool]()


def pytest_addoption(parser):
    group = parser.getgroup("edudet", "edudet.testing (strategies, oracles, backends)")
    group.addoption("--edudet-extreme", action="store_true", default=False,
                    help="edudet.testing.strategies: draw huge (up to 1e15), tiny and subnormal coordinates "
                         "(extreme=None means extreme=True). Also EDUDET_EXTREME=1.")
    group.addoption("--edudet-backends", default=None, metavar="NAMES",
                    help="comma-separated edudet backends that @pytest.mark.edudet_backends runs over "
                         "(default: every backend usable here)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*ops): run the test once per edudet backend usable here for these ops (argument `backend`)",
    )
    if config.getoption("--edudet-extreme", default=False):
        from . import _config

        config.stash[_EXTREME_BEFORE] = _config.extreme_default()
        _config.set_extreme_default(True)


def pytest_unconfigure(config):
    # put the default back (matters when pytest runs in-process, e.g. under pytester)
    before = config.stash.get(_EXTREME_BEFORE, None)
    if before is not None:
        from . import _config

        _config.set_extreme_default(before)


def _wanted_backends(config) -> list[str] | None:
    names = config.getoption("--edudet-backends", default=None)
    if names is None:
        return None
    return [name.strip() for name in names.split(",") if name.strip()]


def _backends(config, ops) -> list[str]:
    """The backends usable here for every op in `ops` (all usable backends if none), filtered by the option."""
    import edudet

    usable = edudet.available_backends()
    for op in ops:
        if not isinstance(op, str):
            raise pytest.UsageError(f"@pytest.mark.{MARKER} takes op names (str), e.g. 'nms', got {op!r}")
        try:
            for_op = edudet.backends_for(op)
        except ValueError as err:
            raise pytest.UsageError(f"@pytest.mark.{MARKER}: {err}") from None
        usable = [name for name in usable if name in for_op]
    wanted = _wanted_backends(config)
    if wanted is not None:
        unknown = sorted(set(wanted) - {"numpy", "numba", "cython", "cuda"})
        if unknown:
            raise pytest.UsageError(f"--edudet-backends: unknown backend(s) {unknown}; "
                                    f"choose from numpy, numba, cython, cuda")
        usable = [name for name in usable if name in wanted]
    return usable


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is None:
        return
    if "backend" not in metafunc.fixturenames:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.{MARKER} parametrizes an argument "
                                f"named `backend`; add it to the test's parameters")
    names = _backends(metafunc.config, marker.args)
    if names:
        metafunc.parametrize("backend", names, ids=[f"backend={name}" for name in names])
    else:  # e.g. --edudet-backends=cuda without a GPU: say so instead of silently running nothing
        metafunc.parametrize("backend", [pytest.param(None, marks=pytest.mark.skip(
            reason=f"no edudet backend usable here for {list(marker.args) or 'any op'}"))], ids=["backend=none"])


@pytest.fixture(scope="session")
def edudet_extreme(pytestconfig) -> bool:
    """Whether the strategies draw extreme values by default (``--edudet-extreme`` or ``EDUDET_EXTREME=1``)."""
    from . import _config

    return _config.extreme_default()


@pytest.fixture(scope="session")
def edudet_strategies(edudet_extreme):
    """The `edudet.testing.strategies` module (needs hypothesis), following ``--edudet-extreme``."""
    try:
        from . import strategies
    except ImportError as err:
        pytest.fail(str(err), pytrace=False)
    return strategies


@pytest.fixture(scope="session")
def edudet_backend_names(pytestconfig) -> list[str]:
    """Every edudet backend usable here (after ``--edudet-backends``), e.g. ['numpy', 'numba', 'cython']."""
    return _backends(pytestconfig, ())
