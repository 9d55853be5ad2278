"""Test-wide JAX settings (see shared STYLE.md, rule 7).

Eight fake CPU devices let the data-parallel tests run the same code as on a
pod slice; strict promotion catches silent float64/int mixing and accidental
broadcasting of mismatched ranks.
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
