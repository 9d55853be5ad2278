"""Coevolution domain: piece mutation and rendering, tastes and likes, genres, sharding,
and a --quick run of experiments/coevolve.py asserting the outcomes of RESEARCH.md sec. 3."""
import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from pcmusic.creative import coevolve as co
from pcmusic.creative import listener as lis
from pcmusic.creative import pieces as pieces_lib
from pcmusic.errors import ConfigError, PcmusicError
from tests import experiment_scripts

SPACE = co.PieceSpace()
ONLY_PITCH = dataclasses.replace(SPACE, p_extra_pitch=0.0, p_insert=0.0, p_delete=0.0, p_timbre=0.0)
SPEC = lis.ListenerSpec(n_bands=12, n_context=4, n_latent=8)
TASTE = co.Taste()
mutate = jax.jit(jax.vmap(functools.partial(co.mutate_piece, space=SPACE)))
learn_from_liked = jax.jit(functools.partial(co.learn_from_liked, spec=SPEC, taste=TASTE))


def pieces(n, key=0):
    return jax.vmap(lambda k: co.random_piece(k, space=SPACE))(jax.random.split(jax.random.key(key), n))


def test_mutation_stays_in_range():
    parents = pieces(256)
    keys = jax.random.split(jax.random.key(1), 256)
    children = mutate(keys, parents)
    for _ in range(20):   # many generations: bounds hold throughout
        children = mutate(jax.random.split(keys[0], 256), children)
    lo, hi = math.log2(SPACE.f_min_hz), math.log2(SPACE.f_max_hz)
    assert np.all((children.log2_hz >= lo - 1e-6) & (children.log2_hz <= hi + 1e-6))
    assert np.all((children.n_notes >= SPACE.min_notes) & (children.n_notes <= SPACE.max_notes))
    assert np.all((children.stretch >= 0.9) & (children.stretch <= 1.1))


def test_a_pitch_mutation_moves_one_note_by_10_to_50_cents():
    parents = pieces(200, key=2)
    children = jax.jit(jax.vmap(functools.partial(co.mutate_piece, space=ONLY_PITCH)))(
        jax.random.split(jax.random.key(3), 200), parents)
    cents = 1200 * np.abs(np.asarray(children.log2_hz - parents.log2_hz))
    lo, hi = math.log2(SPACE.f_min_hz), math.log2(SPACE.f_max_hz)
    inside = (np.asarray(children.log2_hz) > lo + 1e-4) & (np.asarray(children.log2_hz) < hi - 1e-4)
    moved = cents > 1e-3
    assert np.all(moved.sum(axis=1) == 1)                      # exactly one note
    assert np.all((cents[moved & inside] >= 10 - 1e-3) & (cents[moved & inside] <= 50 + 1e-3))
    assert np.all(np.flatnonzero(moved.any(axis=0)) < SPACE.max_notes)
    np.testing.assert_array_equal(np.asarray(children.n_notes), np.asarray(parents.n_notes))


def test_insert_and_delete_keep_the_other_notes_in_order():
    base = co.Piece(jnp.log2(jnp.asarray([200., 300., 400., 500., 0., 0., 0., 0.]) + 1e-3).astype(jnp.float32),
                    jnp.int32(4), jnp.float32(1.0), jnp.float32(0.5))
    base = pieces_lib._clip(base, SPACE)
    grow = dataclasses.replace(ONLY_PITCH, p_insert=1.0, cents_range=(10.0, 10.0))
    shrink = dataclasses.replace(ONLY_PITCH, p_delete=1.0, cents_range=(10.0, 10.0))
    for k in range(5):
        g = co.mutate_piece(jax.random.key(k), base, space=grow)
        s = co.mutate_piece(jax.random.key(k), base, space=shrink)
        assert int(g.n_notes) == 5 and int(s.n_notes) == 3
        old = np.round(np.exp2(np.asarray(base.log2_hz[:4])) / 100)
        # removing the inserted note from the grown piece gives the parent back, up to one
        # 10-cent step; a deleted note leaves the others in order
        grown = np.round(np.exp2(np.asarray(g.log2_hz[:5])) / 100)
        assert any(np.array_equal(np.delete(grown, i), old) for i in range(5))
        kept = np.round(np.exp2(np.asarray(s.log2_hz[:3])) / 100)
        assert any(np.array_equal(np.delete(old, i), kept) for i in range(4))


def test_render_loops_the_melody_at_its_pitches():
    piece = co.Piece(jnp.log2(jnp.asarray([300., 450., 0, 0, 0, 0, 0, 0], jnp.float32) + 1.0),
                     jnp.int32(2), jnp.float32(1.0), jnp.float32(0.5))
    f0, env = co.note_controls(piece.log2_hz, piece.n_notes, space=SPACE)
    f0 = np.asarray(f0)
    on = np.asarray(env) > 0
    np.testing.assert_allclose(f0[on][:9], np.exp2(np.log2(301.0)), rtol=1e-5)
    audio = np.asarray(co.render_piece(piece, space=SPACE, sample_rate=16000, hop=160))
    assert audio.shape == (SPACE.n_frames * 160,)
    # the second note (frames 12..20) has its spectral peak at 451 Hz
    seg = audio[13 * 160:20 * 160] * np.hanning(7 * 160)
    spectrum = np.abs(np.fft.rfft(seg, 16000))
    assert abs(np.argmax(spectrum) - 451) <= 2
    # the melody repeats: frames of the 1st and 2nd loop sound the same
    np.testing.assert_allclose(f0[:24], f0[24:48])


def test_genres_count_components_of_the_like_graph():
    likes = np.zeros((6, 4), bool)
    likes[0, 0] = likes[1, 0] = likes[1, 1] = True     # g0, g1 via l0, l1: one genre
    likes[2, 2] = likes[3, 2] = True                   # g2, g3 via l2: another
    # g4, g5 and l3 like nothing / are liked by nobody
    assert co.genres(likes) == 2
    likes[3, 1] = True                                 # bridge: one genre
    assert co.genres(likes) == 1
    assert co.genres(likes, listener_valid=np.array([True, False, True, True])) == 2
    assert co.genres(np.zeros((3, 2), bool)) == 0


def test_piece_type_and_interval_entropy():
    piece = co.Piece(np.log2(np.array([440., 880., 440., 880.] + [1.] * 4)), np.int32(4),
                     np.float32(1.004), np.float32(0.5))
    t = co.piece_type(piece)
    assert t == (0, 12, 0, 12, 100)
    assert co.type_interval_entropy(t) == pytest.approx(1.0)     # +12, -12 equally often
    assert co.type_interval_entropy((0, 0, 0, 100)) == 0.0


@pytest.fixture(scope="module")
def population():
    params = jax.vmap(lambda k: lis.init_listener(SPEC, key=k))(jax.random.split(jax.random.key(4), 8))
    band = jnp.tile(jnp.asarray([[0.0, 1e9]], jnp.float32), (8, 1))
    gens = pieces(16, key=5)
    frames = jax.jit(functools.partial(co.hear_pieces, space=SPACE, spec=SPEC))(gens)
    return {"params": params, "band": band}, {"piece": gens, "frames": frames}


def test_normalised_error_and_likes_follow_their_definitions(population):
    listeners, gens = population
    one = jax.tree.map(lambda x: x[0], listeners["params"])
    frames = gens["frames"][0]
    error = jax.jit(functools.partial(co.normalised_error, spec=SPEC))
    e = float(error(one, frames))
    f = float(jnp.mean(jax.jit(functools.partial(lis.free_energy, spec=SPEC))(one, frames)))
    spread = float(jnp.mean(jnp.sum((frames - frames.mean(0, keepdims=True)) ** 2, axis=-1)))
    assert e == pytest.approx(f / (0.5 * spread + 1e-3), rel=1e-4)
    errors = np.asarray(jax.vmap(error, in_axes=(0, None))(listeners["params"], gens["frames"]))
    band = np.stack([np.median(errors, axis=1) * 0.8, np.median(errors, axis=1) * 1.25], -1)
    judged = dict(listeners, band=jnp.asarray(band, jnp.float32))
    likes = np.asarray(jax.jit(functools.partial(co.like_matrix, spec=SPEC, taste=TASTE))(gens, judged))
    expected = (errors.T >= band[:, 0]) & (errors.T <= band[:, 1])
    np.testing.assert_array_equal(likes, expected)
    assert 0 < likes.mean() < 1


def test_listener_mutation_and_learning_from_liked_pieces(population):
    listeners, gens = population
    children = co.mutate_listeners(jax.random.key(6), dict(listeners, band=jnp.tile(
        jnp.asarray([[0.2, 0.5]], jnp.float32), (8, 1))), taste=TASTE)
    band = np.asarray(children["band"])
    assert np.all(band[:, 0] <= band[:, 1]) and np.all((band >= 0.01) & (band <= 4.0))
    assert not np.allclose(band, [[0.2, 0.5]])
    # a band that likes everything: every listener learns; an empty band: none does
    valid = jnp.ones(8, bool)
    learned = learn_from_liked(jax.random.key(7), listeners, valid, gens, jnp.ones(16, bool))
    assert not np.allclose(learned["params"]["maps"][0]["w"], listeners["params"]["maps"][0]["w"])
    bored = dict(listeners, band=jnp.tile(jnp.asarray([[0.0, 0.0]], jnp.float32), (8, 1)))
    kept = learn_from_liked(jax.random.key(7), bored, valid, gens, jnp.ones(16, bool))
    np.testing.assert_array_equal(kept["params"]["maps"][0]["w"], listeners["params"]["maps"][0]["w"])


def test_likes_are_the_same_with_the_population_sharded_over_devices(population):
    listeners, gens = population
    fn = jax.jit(functools.partial(co.like_matrix, spec=SPEC, taste=TASTE))
    plain = np.asarray(fn(gens, listeners))
    mesh = Mesh(np.array(jax.devices()[:8]), ("pop",))
    sharded = jax.device_put(listeners, NamedSharding(mesh, PartitionSpec("pop")))
    np.testing.assert_array_equal(np.asarray(fn(gens, sharded)), plain)


def test_piece_space_rejects_bad_bounds():
    with pytest.raises(ConfigError, match="min_notes"):
        co.PieceSpace(min_notes=9)
    with pytest.raises(ConfigError, match="cents_range"):
        co.PieceSpace(cents_range=(0.0, 10.0))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    return experiment_scripts.run_quick("coevolve", tmp_path_factory)


def test_quick_run_is_open_ended_and_the_controls_differ(quick_run):
    _, out, results = quick_run
    runs = results["runs"]
    main = runs["resource_limit"]
    assert 0.02 < main["generator_pass_rate"] < 0.98 and 0.02 < main["listener_pass_rate"] < 0.98
    assert main["final_archive"] > 0 and main["mean_genres_second_half"] >= 1
    # the resource limit raises ecology; accepting everything changes more, with less structure
    assert main["mean_ecology_second_half"] > runs["no_resource_limit"]["mean_ecology_second_half"]
    always = runs["mc_always_true"]
    assert always["generator_pass_rate"] == 1.0
    assert always["mean_raw_change_second_half"] > main["mean_raw_change_second_half"]
    assert always["mean_ecology_second_half"] < main["mean_ecology_second_half"]
    for snap in main["snapshots"]:
        assert set(snap) >= {"change", "novelty", "ecology", "complexity", "archive", "genres",
                             "generator_pass_rate", "listener_pass_rate"}
    assert results["survivor_wavs"] and all((out / w).stat().st_size > 1000
                                            for w in results["survivor_wavs"])
    assert (out / "coevolve_metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_run_refuses_to_overwrite(quick_run):
    script, out, _ = quick_run
    with pytest.raises(PcmusicError, match="--force"):
        script.main(["--quick", "--out", str(out)])
