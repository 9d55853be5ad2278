"""Test-wide JAX settings (see shared STYLE.md, rule 7), the fluidsynth marker, and a
fresh-process runner for determinism checks.

Eight fake CPU devices let the data-parallel tests run the same code as on a
pod slice; strict promotion catches silent float64/int mixing and accidental
broadcasting of mismatched ranks. `JAX_PLATFORMS=cuda pytest ...` runs them on a GPU.

Tests marked `fluidsynth` need the fluidsynth binary and a General MIDI soundfont: they
skip where either is missing, except under CI (the environment variable CI set, as CI
services do), where a missing one fails them: CI installs both (.ci/run), so a skip
there would only hide a broken install.
"""
import atexit
import gc
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent compilation cache for this session's processes (the xdist workers and
# the subprocesses of the CLI tests inherit it): a program compiled by one test module
# is loaded, not compiled again, by every later module that builds the same one, in
# either worker, after `_release_compiled_programs` dropped it from memory. Not shared
# with other sessions, whose programs were compiled from other code.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="pcmusic-test-jax-cache-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)

import jax  # noqa: E402   (reads JAX_COMPILATION_CACHE_DIR: the cache is on)

# The tests assert float32 mathematics (energies that never rise, replayed probes equal
# to the record to 1e-5, vmapped runs equal to single ones). On NVIDIA GPUs JAX's default
# float32 matmul is TF32 (10-bit mantissa): two of them failed on an H100 for that alone.
# Full float32 everywhere; on a CPU this is what the default already does.
jax.config.update("jax_default_matmul_precision", "highest")
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

ROOT = Path(__file__).resolve().parent.parent


def under_ci() -> bool:
    """Whether the environment variable CI says this is a CI run (CI=true, CI=1, ...)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing_fluidsynth(item) -> str | None:
    """Why a `fluidsynth` test cannot run here (None: it can, or it is not one)."""
    if item.get_closest_marker("fluidsynth") is None:
        return None
    from pcmusic.data import fluid

    if fluid.available():
        return None
    return "fluidsynth or a General MIDI soundfont is missing (Debian: fluidsynth, timgm6mb-soundfont)"


def pytest_runtest_setup(item):
    """A `fluidsynth` test skips where fluidsynth or the soundfont is missing, outside CI."""
    missing = _missing_fluidsynth(item)
    if missing and not under_ci():
        pytest.skip(missing)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    """...and fails (FAILED, not skipped) under CI, before its body runs."""
    missing = _missing_fluidsynth(item)
    if missing and under_ci():
        pytest.fail(f"CI is set but {missing}: CI must install them (.ci/run); "
                    "this test would otherwise skip silently", pytrace=False)


# The longest test files (minutes each: training runs, experiment smoke runs, the CLI end
# to end) run first, in this order, the rest after them as collected: with `-n 2 --dist
# loadfile` (and `--no-loadscope-reorder`, pyproject.toml) a worker then ends on short
# files instead of the other waiting while it runs a long one.
LONGEST_FIRST = ("test_train.py", "test_cli.py", "test_notes.py", "test_experiment_tuning_copy.py",
                 "test_model.py", "test_demo.py", "test_perceive_tool.py", "test_freqfit.py",
                 "test_listening.py", "test_perceive.py", "test_flax_maps.py", "test_probe.py")


def pytest_collection_modifyitems(config, items):
    """Order the test files longest first (LONGEST_FIRST); tests within a file keep theirs."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


# Runs in a new interpreter: the suite's JAX settings (this file), then `module.function()`,
# whose dict of arrays comes back through an .npz file.
_FRESH_RUNNER = """
import importlib, sys
import numpy as np
import tests.conftest  # noqa: F401  (the suite's JAX settings; XLA_FLAGS is already set)
module, name, out = sys.argv[1:]
result = getattr(importlib.import_module(module), name)()
np.savez(out, **{k: np.asarray(v) for k, v in result.items()})
"""


@pytest.fixture
def fresh_process(tmp_path):
    """run(module, function) -> dict of numpy arrays: `module.function()` (no arguments,
    returning a dict of arrays) called in a new Python process, with one host device
    instead of this process's eight (other XLA flags, so another compilation) and another
    hash seed. For determinism a user relies on (the same seed, the same sound in every
    run), which calling a pure function twice in one process cannot test."""
    def run(module: str, function: str, timeout: float = 600) -> dict:
        out = tmp_path / f"{module}.{function}.npz"
        flags = os.environ.get("XLA_FLAGS", "").replace("--xla_force_host_platform_device_count=8", "")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "12345",
               "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count=1".strip()}
        env.pop("JAX_COMPILATION_CACHE_DIR", None)   # compile, not load this process's programs
        result = subprocess.run([sys.executable, "-c", _FRESH_RUNNER, module, function, str(out)],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, result.stderr[-4000:]
        with np.load(out) as f:
            return {k: f[k] for k in f.files}
    return run


# Memory mappings a process may hold before the suite drops its compiled programs: a
# third of the kernel's default limit (vm.max_map_count, 65,530), far below it.
MAX_MAPPINGS = 20_000


def _n_mappings() -> int | None:
    """Memory mappings this process holds (None where /proc is not there to say)."""
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return None


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every compiled program after a test module once the process holds
    MAX_MAPPINGS memory mappings (after every module where /proc cannot say). Each XLA
    CPU executable holds a few mappings until its jit cache lets go of it (module-level
    jits never do), and the whole suite in one process grew past 30,000 of the kernel's
    default limit of 65,530 (vm.max_map_count) by its middle: four CI runs segfaulted
    late in the suite, inside XLA compiling or loading an executable, which is where a
    refused mmap lands. Below the bound the programs stay, so a later module that runs
    the same ones (the trained tiny model's) neither traces nor loads them again."""
    yield
    n_maps = _n_mappings()
    if n_maps is None or n_maps > MAX_MAPPINGS:
        jax.clear_caches()
        gc.collect()
