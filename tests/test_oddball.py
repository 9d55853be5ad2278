"""Oddball: sequence rules, stream controls, window statistics, the permutation test, and a
--quick run of experiments/oddball.py asserting the mismatch effects of RESEARCH.md sec. 6."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pcmusic.creative import oddball as odd
from pcmusic.errors import ConfigError, PcmusicError
from tests import experiment_scripts


def test_rare_events_follow_the_paradigm_rules():
    seq = np.asarray(odd.rare_events(jax.random.key(0), n_tones=20000, probability=0.1, n_initial=10))
    assert not seq[:10].any()
    assert not (seq[1:] & seq[:-1]).any()                    # never two in a row
    assert abs(seq[10:].mean() - 0.1) < 0.01                 # the asked rate despite the rule
    rarer = np.asarray(odd.rare_events(jax.random.key(0), n_tones=20000, probability=0.05, n_initial=10))
    assert abs(rarer[10:].mean() - 0.05) < 0.01
    with pytest.raises(PcmusicError, match="probability"):
        odd.rare_events(jax.random.key(0), n_tones=10, probability=0.6, n_initial=1)


def test_tone_controls_place_tones_and_change_pitch_only_in_silence():
    freqs = jnp.asarray([1000.0, 1100.0, 1000.0], jnp.float32)
    present = jnp.asarray([True, True, False])
    f, a = odd.tone_controls(freqs, present, soa_frames=10, tone_frames=4, lead_frames=2, amplitude=0.5)
    f, a = np.asarray(f[:, 0]), np.asarray(a[:, 0])
    np.testing.assert_array_equal(a[:10], [0, 0, .5, .5, .5, .5, 0, 0, 0, 0])
    np.testing.assert_array_equal(a[20:], 0.0)               # the omitted tone is silent
    np.testing.assert_array_equal(f[2:6], 1000.0)
    np.testing.assert_array_equal(f[12:16], 1100.0)
    changes = np.flatnonzero(np.diff(f)) + 1
    # a frequency change happens between two silent frames: no audible glide
    assert all(a[i - 1] == 0 and a[i] == 0 for i in changes)


def test_slot_means_and_ratio_against_numpy():
    x = np.arange(30, dtype=np.float32)
    np.testing.assert_allclose(np.asarray(odd.slot_means(x, soa_frames=10, start=2, stop=5)),
                               [3.0, 13.0, 23.0])
    values = jnp.asarray([4.0, 1.0, 2.0, 6.0, 9.0])
    labels = jnp.asarray([True, False, False, True, False])
    valid = jnp.asarray([True, True, True, True, False])
    np.testing.assert_allclose(float(odd.mean_ratio(values, labels, valid)), 5.0 / 1.5)


def test_permutation_test_detects_a_difference_and_not_its_absence():
    key = jax.random.key(1)
    labels = jnp.arange(200) % 10 == 3
    noise = jax.random.uniform(jax.random.key(2), (200,)) + 1.0
    ratio, p = odd.permutation_test(noise + 2.0 * labels.astype(jnp.float32), labels, key=key, n_permutations=999)
    assert float(ratio) > 1.5 and float(p) == pytest.approx(1 / 1000)
    _, p_null = odd.permutation_test(noise, labels, key=key, n_permutations=999)
    assert float(p_null) > 0.05
    # invalid entries take no part: a huge value there changes nothing
    valid = jnp.arange(200) < 190
    spiked = noise.at[195].set(1e6)
    r1, _ = odd.permutation_test(spiked, labels, key=key, n_permutations=99, valid=valid)
    r2 = odd.mean_ratio(noise, labels, valid)
    np.testing.assert_allclose(float(r1), float(r2), rtol=1e-6)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    return experiment_scripts.run_quick("oddball", tmp_path_factory)


def test_quick_run_shows_the_mismatch_effects(quick_run):
    _, _, results = quick_run
    (seed,) = results["seeds"]
    by = {(s["p_deviant"], s["gap"]): s for s in seed["streams"]}
    main = by[(0.1, 0.1)]
    assert main["n_deviants"] > 20 and main["deviant_error"] > main["standard_error"]
    assert main["ratio"] > 1 and main["p_value"] < 0.01
    gaps = [by[(0.1, g)]["ratio"] for g in (0.02, 0.05, 0.1, 0.2)]
    assert np.all(np.diff(gaps) >= 0)
    assert by[(0.05, 0.1)]["ratio"] > by[(0.2, 0.1)]["ratio"]
    errors = seed["new_standard"]["errors"]
    assert np.mean(errors[-10:]) < 0.5 * np.mean(errors[:3])
    om = seed["omission"]
    assert om["omitted_window_error"] > om["silent_baseline_error"] and om["p_value"] < 0.01
    assert all(results["holds_for_all_seeds"].values())


def test_quick_run_writes_figures_and_refuses_to_overwrite(quick_run):
    script, out, results = quick_run
    for name in results["figures"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert results["config"]["n_tones"] >= 400
    with pytest.raises(PcmusicError, match="--force"):
        script.main(["--quick", "--out", str(out)])
    with pytest.raises(ConfigError, match="n_tones"):
        script.main(["--quick", "--out", str(out / "other"), "--set", "n_tones=100"])
