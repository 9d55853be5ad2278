"""Curiosity: the development environment, motif melodies and their interval entropy,
repeated and sequential compression progress (a known process stops paying), the
CP-seeking generator, and a --quick run of experiments/curiosity.py (RESEARCH.md sec. 4)."""
import functools

import jax
import numpy as np
import pytest

from pcmusic.creative import coevolve as co
from pcmusic.creative import curiosity as cur
from pcmusic.creative import listener as lis
from pcmusic.errors import ConfigError, PcmusicError
from tests import experiment_scripts

SPEC = lis.ListenerSpec(n_bands=12, n_context=4, n_latent=8)
ENV = cur.Environment(n_clips=8, n_frames=32)
SPACE = co.PieceSpace(max_notes=4, n_frames=48)
progress_jit = jax.jit(functools.partial(lis.compression_progress, spec=SPEC), static_argnames="n_learn")


def test_environment_is_melodies_and_noise():
    frames = jax.jit(functools.partial(cur.environment_frames, env=ENV, spec=SPEC))
    a = frames(jax.random.key(0))
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


def test_sequential_progress_is_compression_progress_instance_by_instance():
    params = lis.init_listener(SPEC, key=jax.random.key(6))
    x = 2.0 + jax.random.normal(jax.random.key(7), (3, 40, SPEC.n_bands))
    learned, cps = jax.jit(functools.partial(cur.sequential_progress, spec=SPEC, n_learn=2))(
        params, x[:, :20], x[:, 20:])
    p = params
    for i in range(3):
        progress, p = progress_jit(p, x[i, :20], x[i, 20:], n_learn=2)
        np.testing.assert_allclose(float(cps[i]), float(progress), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(learned["maps"][0]["w"]), np.asarray(p["maps"][0]["w"]),
                               rtol=1e-4, atol=1e-6)


def test_a_known_process_stops_paying_a_structured_one_keeps_paying():
    """Schmidhuber's noise: once the listener knows the process (stationary noise of one
    level), a new instance brings nothing learnable; a new looped pattern always does."""
    params = lis.init_listener(SPEC, key=jax.random.key(8))
    n_inst, n = 12, 48
    noise = 2.0 + 0.5 * jax.random.normal(jax.random.key(9), (n_inst, n, SPEC.n_bands))
    bands = jax.random.randint(jax.random.key(10), (n_inst, 3), 0, SPEC.n_bands)
    loops = jax.nn.one_hot(bands[:, np.arange(n) // 2 % 3], SPEC.n_bands) * 4.0  # 3-band loops
    run = jax.jit(functools.partial(cur.sequential_progress, spec=SPEC, n_learn=3))
    _, cp_noise = run(params, noise[:, :24], noise[:, 24:])
    _, cp_loops = run(params, loops[:, :24], loops[:, 24:])
    cp_noise, cp_loops = np.asarray(cp_noise), np.asarray(cp_loops)
    assert cp_noise[0] > 0.5                                   # a newborn learns the level
    assert abs(cp_noise[-4:].mean()) < 0.02 * cp_noise[0]      # then nothing is left
    assert np.all(cp_loops[-4:] > 20 * abs(cp_noise[-4:].mean()))


def test_motif_melodies_loop_and_their_interval_entropy_grows_with_the_motif():
    n_notes, n_frames = 12, 96
    make = jax.jit(jax.vmap(functools.partial(cur.motif_audio, env=ENV, n_notes=n_notes,
                                              n_frames=n_frames, spec=SPEC), in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(11), 16)
    entropy = {}
    for n_motif in (1, 2, 3, 12):
        audio, degrees = make(keys, n_motif)
        degrees = np.asarray(degrees)
        assert audio.shape == (16, n_frames * SPEC.hop)
        np.testing.assert_array_equal(degrees[:, n_motif:], degrees[:, :n_notes - n_motif])
        entropy[n_motif] = np.mean([cur.heard_interval_entropy(d) for d in degrees])
    assert entropy[1] == 0.0 and entropy[1] < entropy[2] < entropy[3] < entropy[12]
    assert entropy[2] <= 1.0                                   # two intervals at most
    # the same key gives the same walk: a motif is the first n_motif notes of the i.i.d. walk
    np.testing.assert_array_equal(np.asarray(make(keys, 2)[1])[:, :2],
                                  np.asarray(make(keys, 12)[1])[:, :2])
    frames = np.asarray(lis.hear(make(keys[:1], 1)[0], spec=SPEC))[0]
    slot = n_frames // n_notes                                # one pitch: every note heard alike
    np.testing.assert_allclose(frames[2:slot - 3], frames[slot + 2:2 * slot - 3], atol=1e-2)
    assert frames[slot - 1].max() < frames[2].max() - 0.5      # the gate leaves a gap (> 5 dB dip)


def test_heard_interval_entropy_and_tone_patterns():
    assert cur.heard_interval_entropy([3, 3, 3]) == 0.0
    assert cur.heard_interval_entropy([0, 1, 0, 1]) == pytest.approx(-(2 / 3) * np.log2(2 / 3)
                                                                    - (1 / 3) * np.log2(1 / 3))
    assert cur.heard_interval_entropy([0, 1, 3, 6, 10]) == pytest.approx(2.0)
    audio = cur.tone_pattern_audio(np.array([300.0, 1200.0], np.float32), env=ENV, note_frames=5,
                                   n_frames=40, spec=SPEC)
    frames = np.asarray(lis.hear(audio, spec=SPEC))
    np.testing.assert_allclose(frames[7:17], frames[17:27], atol=1e-3)   # period of 10 frames
    assert np.argmax(frames[7]) > np.argmax(frames[12])    # frame 7: 1200 Hz, frame 12: 300 Hz


def test_search_keeps_the_mutant_with_most_progress():
    params = lis.init_listener(SPEC, key=jax.random.key(3))
    start = co.random_piece(jax.random.key(4), space=SPACE)
    run = jax.jit(functools.partial(cur.search, spec=SPEC, space=SPACE, n_generations=3,
                                    n_mutants=4, n_learn=2))
    learned, trace = run(params, start, jax.random.key(5))
    # generation 0: recompute every mutant's CP and check the chosen one is the best
    k0 = jax.random.split(jax.random.key(5), 3)[0]
    mutants = jax.vmap(lambda k: co.mutate_piece(k, start, space=SPACE))(jax.random.split(k0, 4))
    frames = jax.jit(functools.partial(co.hear_pieces, space=SPACE, spec=SPEC))(mutants)
    cps = [float(progress_jit(params, f[:24], f[24:], n_learn=2)[0]) for f in frames]
    assert float(trace.progress[0]) == pytest.approx(max(cps), rel=1e-4)
    np.testing.assert_allclose(np.asarray(trace.pieces.log2_hz[0]),
                               np.asarray(mutants.log2_hz[int(np.argmax(cps))]))
    assert not np.allclose(learned["maps"][0]["w"], params["maps"][0]["w"])   # it learned


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    return experiment_scripts.run_quick("curiosity", tmp_path_factory)


def test_quick_run_compression_progress(quick_run):
    _, out, results = quick_run
    (seed,) = results["seeds"]
    cp, familiar = seed["cp"], seed["cp_familiar"]
    assert cp["periodic"] > cp["constant"] > 0
    assert seed["ordering_developed"] == (cp["periodic"] > cp["constant"] > 0 >= cp["noise"])
    # noise: the developed listener still learns that it is noise (a regime its single
    # linear predictor shares with melodies), a listener familiar with noise gains ~nothing
    assert abs(familiar["noise"]) < 0.01 * cp["periodic"]
    assert abs(familiar["noise"]) < abs(cp["noise"])
    n = results["config"]["probes"]["n_familiar"] + results["config"]["probes"]["n_measure"]
    assert all(len(v) == n for v in seed["cp_sequences"].values())
    reps = seed["repetitions"]["cp"]
    assert len(reps) == 10 and reps[9] < 0.05 * reps[0] and np.all(np.diff(reps) < 0)
    # interval-entropy sweeps: looped motifs peak inside the range (the i.i.d. control
    # is reported, whatever its shape)
    motif = seed["motif_sweep"]
    entropies = [m["entropy_bits"] for m in motif]
    assert entropies[0] == 0.0 and np.all(np.diff(entropies) > 0)
    assert seed["motif_peak_strictly_inside"]
    means = [s["cp_mean"] for s in seed["entropy_sweep"]]
    assert seed["peak_strictly_inside"] == (0 < int(np.argmax(means)) < len(means) - 1)
    holds = results["holds_for_all_seeds"]
    assert holds["tenth_repetition_below_5_percent"] and holds["motif_entropy_peak_strictly_inside"]


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
