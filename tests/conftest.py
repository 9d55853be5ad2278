"""Test-wide JAX settings (see shared STYLE.md, rule 7).

Eight fake CPU devices let the data-parallel tests run the same code as on a
pod slice; strict promotion catches silent float64/int mixing and accidental
broadcasting of mismatched ranks. `JAX_PLATFORMS=cuda pytest ...` runs them on a GPU.
"""
import gc
import os

import pytest

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

# The tests assert float32 mathematics (energies that never rise, replayed probes equal
# to the record to 1e-5, vmapped runs equal to single ones). On NVIDIA GPUs JAX's default
# float32 matmul is TF32 (10-bit mantissa): two of them failed on an H100 for that alone.
# Full float32 everywhere; on a CPU this is what the default already does.
jax.config.update("jax_default_matmul_precision", "highest")
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every compiled program after each test module. Each XLA CPU executable holds
    a few memory mappings until its jit cache lets go of it (module-level jits never do),
    and the whole suite in one process grew past 30,000 of the kernel's default limit of
    65,530 (vm.max_map_count) by its middle: four CI runs segfaulted late in the suite,
    inside XLA compiling or loading an executable, which is where a refused mmap lands."""
    yield
    jax.clear_caches()
    gc.collect()
