"""Curiosity: the development environment, repeated compression progress, the CP-seeking
generator, and a --quick run of experiments/curiosity.py (RESEARCH.md sec. 4)."""
import functools
import importlib.util
import json
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from pcmusic.creative import coevolve as co
from pcmusic.creative import curiosity as cur
from pcmusic.creative import listener as lis
from pcmusic.errors import ConfigError, PcmusicError

SCRIPT = Path(__file__).resolve().parent.parent / "experiments" / "curiosity.py"
SPEC = lis.ListenerSpec(n_bands=12, n_context=4, n_latent=8)
ENV = cur.Environment(n_clips=8, n_frames=32)
SPACE = co.PieceSpace(max_notes=4, n_frames=48)
progress_jit = jax.jit(functools.partial(lis.compression_progress, spec=SPEC), static_argnames="n_learn")


def test_environment_is_melodies_and_noise_deterministic_per_key():
    frames = jax.jit(functools.partial(cur.environment_frames, env=ENV, spec=SPEC))
    a, b = frames(jax.random.key(0)), frames(jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert a.shape == (8, 32, SPEC.n_bands)
    # the first quarter are noise clips: broadband, no silent gaps between notes
    flat = np.asarray(a)
    assert np.all(flat[:2, 4:-4].min(axis=-1) > 0.5)
    assert np.any(flat[2:].min(axis=-1) < 0.1)             # melodies have quiet bands
    assert not np.allclose(np.asarray(frames(jax.random.key(1))), flat)


def test_temperatures_span_the_entropy_range():
    temps = ENV.temperatures(8)
    assert np.all(np.diff(temps) > 0) and temps[0] < 0.01
    with pytest.raises(ConfigError, match="noise_fraction"):
        cur.Environment(noise_fraction=1.0)


def test_repeated_progress_decays_and_matches_step_by_step():
    params = lis.init_listener(SPEC, key=jax.random.key(2))
    x = np.zeros((40, SPEC.n_bands), np.float32)
    x[::4, 3] = 3.0                                           # a periodic click in one band
    reps = np.asarray(jax.jit(functools.partial(cur.repeated_progress, spec=SPEC, n_learn=3,
                                                n_repetitions=4))(params, x[:20], x[20:]))
    p, expected = params, []
    for _ in range(4):
        progress, p = progress_jit(p, x[:20], x[20:], n_learn=3)
        expected.append(float(progress))
    np.testing.assert_allclose(reps, expected, rtol=1e-4, atol=1e-6)
    assert reps[0] > 0 and reps[-1] < reps[0]


def test_search_keeps_the_mutant_with_most_progress():
    params = lis.init_listener(SPEC, key=jax.random.key(3))
    start = co.random_piece(jax.random.key(4), space=SPACE)
    run = jax.jit(functools.partial(cur.search, spec=SPEC, space=SPACE, n_generations=3,
                                    n_mutants=4, n_learn=2))
    learned, trace = run(params, start, jax.random.key(5))
    again = run(params, start, jax.random.key(5))[1]
    np.testing.assert_array_equal(np.asarray(trace.progress), np.asarray(again.progress))
    # generation 0: recompute every mutant's CP and check the chosen one is the best
    k0 = jax.random.split(jax.random.key(5), 3)[0]
    mutants = jax.vmap(lambda k: co.mutate_piece(k, start, space=SPACE))(jax.random.split(k0, 4))
    frames = jax.jit(functools.partial(co.hear_pieces, space=SPACE, spec=SPEC))(mutants)
    cps = [float(progress_jit(params, f[:24], f[24:], n_learn=2)[0]) for f in frames]
    assert float(trace.progress[0]) == pytest.approx(max(cps), rel=1e-4)
    np.testing.assert_allclose(np.asarray(trace.pieces.log2_hz[0]),
                               np.asarray(mutants.log2_hz[int(np.argmax(cps))]))
    assert not np.allclose(learned["maps"][0]["w"], params["maps"][0]["w"])   # it learned


def load_script():
    spec = importlib.util.spec_from_file_location("experiment_curiosity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("curiosity")
    script = load_script()
    script.main(["--quick", "--out", str(out)])
    return script, out, json.loads((out / "results.json").read_text())


def test_quick_run_compression_progress(quick_run):
    _, out, results = quick_run
    (seed,) = results["seeds"]
    cp = seed["cp"]
    assert cp["periodic"] > cp["constant"] > 0
    # noise: nothing beyond its mean level to learn; reported as measured (RESEARCH expects
    # <= 0; this listener finds a small positive remainder, see the report)
    assert abs(cp["noise"]) < 0.05 * cp["periodic"]
    reps = seed["repetitions"]["cp"]
    assert len(reps) == 10 and reps[9] < 0.05 * reps[0] and np.all(np.diff(reps) < 0)
    sweep = seed["entropy_sweep"]
    means = [s["cp_mean"] for s in sweep]
    assert seed["peak_entropy_bits"] == sweep[int(np.argmax(means))]["entropy_bits"]
    assert seed["peak_strictly_inside"] == (0 < int(np.argmax(means)) < len(means) - 1)
    assert results["holds_for_all_seeds"]["tenth_repetition_below_5_percent"]


def test_quick_run_search_trajectory_and_audio(quick_run):
    script, out, results = quick_run
    search = results["seeds"][0]["search"]
    assert len(search["cp"]) == results["config"]["search"]["n_generations"]
    assert search["n_distinct_types"] > 1                      # it keeps moving
    for snap in search["snapshots"]:
        assert (out / snap["wav"]).stat().st_size > 1000
        assert all(150 - 1e-3 <= f <= 900 + 1e-3 for f in snap["notes_hz"])
    for name in results["figures"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(PcmusicError, match="--force"):
        script.main(["--quick", "--out", str(out)])
