"""MODES measures on small hand-made histories with hand-computed answers."""
import math

import jax
import numpy as np
import pytest

from pcmusic.creative.modes import (archive_growth, change, complexity, ecology, knn_novelty,
                                    mc_pass_rate, novelty, persistent_types)
from pcmusic.errors import PcmusicError

# a returns after an absence, b is transient, c persists; abundances repeat ids
HISTORY = [["a", "a", "b"], ["c", "b"], ["a", "c", "c", "c"], ["a", "c", "dd"], ["dd", "e"]]


def test_change_novelty_archive_without_filter():
    # sets: {a,b} {b,c} {a,c} {a,c,dd} {dd,e}
    np.testing.assert_array_equal(change(HISTORY), [2, 1, 1, 1, 1])
    np.testing.assert_array_equal(novelty(HISTORY), [2, 1, 0, 1, 1])  # a's return is change, not novelty
    np.testing.assert_array_equal(archive_growth(HISTORY), [2, 3, 3, 4, 5])


def test_persistence_filter_drops_transients():
    # present in the last 2 snapshots: {} {b} {c} {a,c} {dd}
    sets = [set(c) for c in persistent_types(HISTORY, persistence=2)]
    assert sets == [set(), {"b"}, {"c"}, {"a", "c"}, {"dd"}]
    np.testing.assert_array_equal(change(HISTORY, persistence=2), [0, 1, 1, 1, 1])
    np.testing.assert_array_equal(novelty(HISTORY, persistence=2), [0, 1, 1, 1, 1])
    # abundances are those at the current snapshot
    assert persistent_types(HISTORY, persistence=2)[2] == {"c": 3}
    assert [set(c) for c in persistent_types(HISTORY, persistence=3)] == [set(), set(), set(),
                                                                          {"c"}, set()]


def test_ecology_is_entropy_of_persistent_abundances():
    got = ecology(HISTORY)
    p = np.array([1, 3]) / 4  # snapshot 2: a once, c three times
    assert got[0] == pytest.approx(-(2 / 3) * math.log2(2 / 3) - (1 / 3) * math.log2(1 / 3))
    assert got[2] == pytest.approx(-np.sum(p * np.log2(p)))
    assert got[3] == pytest.approx(math.log2(3))
    np.testing.assert_allclose(ecology(HISTORY, persistence=2), [0, 0, 0, 1, 0])


def test_complexity_is_max_over_persistent_types():
    got = complexity(HISTORY, len, persistence=2)
    assert math.isnan(got[0])
    np.testing.assert_array_equal(got[1:], [1, 1, 1, 2])


def test_integer_array_snapshots():
    # rows are genomes: equal rows are one type
    hist = [np.array([[1, 2], [1, 2], [3, 4]]), np.array([[3, 4], [5, 6]]), np.array([7, 7, 8])]
    np.testing.assert_array_equal(change(hist), [2, 1, 2])
    assert ecology(hist)[0] == pytest.approx(-(2 / 3) * math.log2(2 / 3) - (1 / 3) * math.log2(1 / 3))
    assert complexity(hist[:2], sum, persistence=2)[1] == 7
    with pytest.raises(PcmusicError, match="1-D"):
        change([np.zeros((2, 2, 2))])
    with pytest.raises(PcmusicError, match="persistence"):
        novelty(HISTORY, persistence=0)


def test_knn_novelty_against_hand_computed_distances():
    reference = np.array([[0.0], [1.0], [3.0], [10.0]], np.float32)
    feats = np.array([[0.0], [5.0]], np.float32)
    # k=2: point 0 -> (0 + 1)/2; point 5 -> (2 + 4)/2
    np.testing.assert_allclose(np.asarray(knn_novelty(feats, reference, k=2)), [0.5, 3.0])
    # masking the row at 3.0 makes 5's neighbours 1 and 10 (distances 4, 5)
    valid = np.array([True, True, False, True])
    np.testing.assert_allclose(np.asarray(knn_novelty(feats, reference, k=2, reference_valid=valid)),
                               [0.5, 4.5])
    # self-exclusion: novelty of the reference points among themselves, k=1
    got = jax.jit(lambda r: knn_novelty(r, r, k=1, exclude_self=True))(reference)
    np.testing.assert_allclose(np.asarray(got), [1.0, 1.0, 2.0, 7.0])
    # k larger than what is valid: mean over the valid rows; euclidean in 2-D
    two_d = np.array([[3.0, 4.0]], np.float32)
    np.testing.assert_allclose(np.asarray(knn_novelty(np.zeros((1, 2), np.float32), two_d)), [5.0])


def test_mc_pass_rate_per_batch_with_padding():
    passed = np.array([[True, False, True, True], [False, False, True, True]])
    valid = np.array([[True, True, True, False], [True, True, True, True]])
    np.testing.assert_allclose(np.asarray(mc_pass_rate(passed)), [0.75, 0.5])
    np.testing.assert_allclose(np.asarray(mc_pass_rate(passed, valid=valid)), [2 / 3, 0.5])
    assert float(mc_pass_rate(np.zeros((0,), bool))) == 0.0
