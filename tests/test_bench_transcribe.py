"""The transcription bench: its material, its scoring, and the soundfont it renders with."""
import numpy as np
import pytest

from pcmusic.bench import transcribe as bt


def test_melodies_are_monophonic_on_their_grid_and_within_range():
    for step in (100.0, 240.0):
        for seed in range(20):
            m = bt.melody(np.random.default_rng(seed), step_cents=step)
            assert 6 <= len(m) <= 10
            assert np.all(m[1:, 0] >= m[:-1, 1] - 1e-9)                   # no overlaps
            assert np.all((m[:, 2] > 160.0) & (m[:, 2] < 890.0))
            cents = 1200 * np.log2(m[:, 2] / 27.5)
            np.testing.assert_allclose(np.mod(cents + step / 2, step) - step / 2, 0.0, atol=1e-6)


def test_the_repeated_notes_set_repeats_pitches_and_leaves_the_other_melodies_alone():
    repeats, plain_repeats = [], []
    for seed in range(40):
        plain = bt.melody(np.random.default_rng(seed))
        assert np.array_equal(plain, bt.melody(np.random.default_rng(seed), repeat_probability=0.0))
        plain_repeats.append(np.mean(np.diff(plain[:, 2]) == 0.0))          # only where the range clips
        m = bt.melody(np.random.default_rng(seed), repeat_probability=bt.REPEAT_PROBABILITY)
        assert np.all(m[1:, 0] >= m[:-1, 1] - 1e-9)
        repeats.append(np.mean(np.diff(m[:, 2]) == 0.0))
    assert np.mean(plain_repeats) < 0.1
    assert np.mean(repeats) == pytest.approx(bt.REPEAT_PROBABILITY, abs=0.1)


def test_score_counts_onsets_within_50_ms_and_pitches_within_50_cents():
    pytest.importorskip("mir_eval")
    ref = bt.melody(np.random.default_rng(0))
    assert bt.score([ref], [ref]) == (1.0, 1.0, 1.0)
    late, sharp = ref.copy(), ref.copy()
    late[0, :2] += 0.06                      # one onset 60 ms late: one miss, one false note
    sharp[1, 2] *= 2 ** (60 / 1200)          # one pitch 60 cents sharp
    n = len(ref)
    for est in (late, sharp):
        p, r, f = bt.score([ref], [est])
        assert p == pytest.approx((n - 1) / n) and r == pytest.approx((n - 1) / n)
    near = ref.copy()
    near[:, :2] += 0.04
    near[:, 2] *= 2 ** (-40 / 1200)          # within both tolerances: all found
    assert bt.score([ref], [near])[2] == 1.0
    assert bt.score([ref], [np.zeros((0, 5))]) == (0.0, 0.0, 0.0)


def test_another_soundfont_tags_every_set_and_render(monkeypatch):
    plain = bt.benchmark_sets(quick=True)
    monkeypatch.setenv(bt.SOUNDFONT_ENV, "/somewhere/FluidR3_GM.sf2")
    tagged = bt.benchmark_sets(quick=True)
    assert len(plain) == len(tagged)
    for (label, rate, _, voices, cases), (label2, rate2, _, voices2, cases2) in zip(plain, tagged):
        assert label2 == f"{label}, FluidR3_GM" and (rate, voices) == (rate2, voices2)
        assert [f"FluidR3_GM_{c[0]}" for c in cases] == [c[0] for c in cases2]
        for (_, v, _), (_, v2, _) in zip(cases, cases2):          # the same material
            assert all(np.array_equal(a, b) for a, b in zip(v, v2))
