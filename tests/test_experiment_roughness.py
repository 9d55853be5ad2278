"""Smoke run of experiments/roughness.py --quick: the qualitative outcomes of RESEARCH.md sec. 5."""

import numpy as np
import pytest

from pcmusic.errors import ConfigError, PcmusicError
from tests import experiment_scripts


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    return experiment_scripts.run_quick("roughness", tmp_path_factory)


def by_name(results, name):
    return next(t for t in results["timbres"] if t["name"] == name)


def test_harmonic_dyads_settle_on_just_ratios(quick_run):
    _, _, results = quick_run
    for name in ("harmonic, 6 partials", "harmonic, 10 partials"):
        descents = {d["interval"]: d for d in by_name(results, name)["descents"]}
        for interval, just in [("3/2", 1.5), ("4/3", 4 / 3), ("5/4", 1.25), ("2/1", 2.0)]:
            assert np.max(np.abs(np.array(descents[interval]["finals"]) - just)) < 1e-3
            # the gradient-free grid scan finds the same minimum
            assert descents[interval]["grid_minimum_at_prediction"]
            starts = np.array(descents[interval]["starts"])
            assert np.all(np.abs(starts / just - 1) <= 0.015 + 1e-6) and np.all(starts != just)


def test_stretched_partials_move_the_minima_off_the_fifth(quick_run):
    _, _, results = quick_run
    for name in ("stretched 2.1, 6 partials", "stretched 2.1, 10 partials"):
        t = by_name(results, name)
        descents = {d["interval"]: d for d in t["descents"]}
        assert np.max(np.abs(np.array(descents["2/1"]["finals"]) - 2.1)) < 1e-3
        assert np.max(np.abs(np.array(descents["3/2"]["finals"]) - 1.543)) < 1e-3
        (probe,) = t["probes"]
        assert probe["ratio"] == 1.5
        assert np.min(np.abs(np.array(probe["finals"]) - 1.5)) > 0.015
        assert probe["grid_minima_within_spread"] == []
        assert np.min(np.abs(np.array(t["grid_minima"]) - 1.5)) > 0.02
    assert results["all_converged"] and results["all_probes_left"]


def test_figure_written_and_results_not_overwritten(quick_run):
    script, out, results = quick_run
    assert (out / "roughness_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert results["config"]["n_starts"] == 4
    with pytest.raises(PcmusicError, match="--force"):
        script.main(["--quick", "--out", str(out)])
    with pytest.raises(ConfigError, match="n_starts"):
        script.main(["--quick", "--out", str(out / "other"), "--set", "n_start=3"])
