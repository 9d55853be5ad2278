"""Tunings: step sizes in cents, exact just ratios, lattices, parsing and errors."""
import numpy as np
import pytest
from fractions import Fraction

from pcmusic.data import (Tuning, TuningError, cents_to_ratio, hz_to_cents, parse_tuning, ratio_to_cents,
                          scale_error_cents, scale_frequencies)


@pytest.mark.parametrize("name, n_steps, step_cents, period_cents", [
    ("12-TET", 12, 100.0, 1200.0),
    ("5-TET", 5, 240.0, 1200.0),
    ("19-TET", 19, 1200.0 / 19, 1200.0),
    ("19-edo", 19, 63.1579, 1200.0),
    ("bohlen-pierce", 13, 146.3042, 1901.955),
    ("13-ED3", 13, 146.3042, 1901.955),
])
def test_equal_steps_in_cents(name, n_steps, step_cents, period_cents):
    tuning = parse_tuning(name)
    assert tuning.n_steps == n_steps
    np.testing.assert_allclose(tuning.step_cents(), step_cents, atol=1e-3)
    assert tuning.period_cents == pytest.approx(period_cents, abs=1e-3)
    assert tuning.step_cents().sum() == pytest.approx(period_cents)


def test_just_ratios_are_exact_fractions():
    just = parse_tuning("just")
    expected = [Fraction(1), Fraction(9, 8), Fraction(5, 4), Fraction(4, 3), Fraction(3, 2), Fraction(5, 3),
                Fraction(15, 8)]
    assert [Fraction(r).limit_denominator(64) for r in just.ratios] == expected
    assert all(r == float(f) for r, f in zip(just.ratios, expected))
    # The just major third is 13.7 cents flat of the tempered one (386.31 vs 400).
    assert ratio_to_cents(5 / 4) == pytest.approx(386.3137, abs=1e-4)
    bp = parse_tuning("bohlen-pierce-just")
    assert bp.period == 3.0 and bp.ratios[6] == 5 / 3 and bp.ratios[-1] == 25 / 9


def test_user_ratios_from_toml_values():
    from_list = parse_tuning([1, "9/8", 1.25, "3/2"])
    assert from_list.ratios == (1.0, 1.125, 1.25, 1.5) and from_list.period == 2.0
    table = parse_tuning({"ratios": ["1", "7/6", "4/3"], "period": "3/2", "name": "tetrachord"})
    assert table.period == 1.5 and table.ratios[1] == 7 / 6
    cents = parse_tuning({"cents": [0, 240, 480, 720, 960]})
    np.testing.assert_allclose(cents.ratios, parse_tuning("5-TET").ratios, rtol=1e-12)


def test_scale_frequencies_cover_range_on_lattice():
    tuning = parse_tuning("5-TET")
    freqs = scale_frequencies(tuning, f_ref_hz=220.0, f_min_hz=100.0, f_max_hz=1000.0)
    assert freqs.min() >= 100.0 and freqs.max() <= 1000.0
    assert np.all(np.diff(freqs) > 0)
    np.testing.assert_allclose(np.diff(ratio_to_cents(freqs)), 240.0, atol=1e-9)
    # 220 * 2**(k/5) for k = -5..10: 110 Hz up to 880 Hz (95.8 and 1010.5 Hz fall outside).
    assert freqs.size == 16 and freqs[0] == pytest.approx(110.0) and freqs[-1] == pytest.approx(880.0)
    edges = scale_frequencies(tuning, f_ref_hz=220.0, f_min_hz=110.0, f_max_hz=880.0)
    assert edges.size == 16  # bounds that are pitches are kept
    np.testing.assert_allclose(scale_error_cents(freqs, tuning, f_ref_hz=220.0), 0.0, atol=1e-9)


def test_cents_helpers_roundtrip_and_scale_error():
    ratios = np.array([0.5, 1.0, 1.5, 3.0])
    np.testing.assert_allclose(cents_to_ratio(ratio_to_cents(ratios)), ratios, rtol=1e-12)
    assert hz_to_cents(880.0, f_ref_hz=440.0) == pytest.approx(1200.0)
    tet = parse_tuning("12-TET")
    # 30 cents above A (and 70 below it, i.e. 30 above A-flat): the nearest pitch decides.
    f = 440.0 * 2 ** (30 / 1200)
    assert scale_error_cents(np.array([f]), tet, f_ref_hz=440.0)[0] == pytest.approx(30.0)
    f = 440.0 * 2 ** (-70 / 1200)
    assert scale_error_cents(np.array([f]), tet, f_ref_hz=440.0)[0] == pytest.approx(30.0)
    # Near the period (1190 cents) the nearest pitch is the octave.
    f = 440.0 * 2 ** (1190 / 1200)
    assert scale_error_cents(np.array([f]), tet, f_ref_hz=440.0)[0] == pytest.approx(-10.0)


@pytest.mark.parametrize("bad, fragment", [
    ("17-tone", "accepted names"),
    ("0-TET", "accepted names"),
    ([1.2, 1.5], "start with 1"),
    ([1, 1.5, 1.2], "rise strictly"),
    ([1, 2.5], "below the period"),
    ({"ratios": [1, "x/y"]}, "not a ratio"),
    ({"ratios": [1], "cents": [0]}, "exactly one"),
])
def test_bad_tunings_explain_themselves(bad, fragment):
    with pytest.raises(TuningError, match=fragment):
        parse_tuning(bad)


def test_tuning_is_hashable_and_validated():
    tuning = Tuning(ratios=(1, 1.25, 1.5), period=2.0)
    assert hash(tuning) == hash(Tuning(ratios=(1.0, 1.25, 1.5)))
    with pytest.raises(TuningError, match="period"):
        Tuning(ratios=(1.0,), period=1.0)
