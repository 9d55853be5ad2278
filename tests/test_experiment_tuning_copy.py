"""Smoke run of experiments/tuning_copy.py --quick.

Two training steps cannot teach a model a tuning, so the quick run asserts what must
hold at any length: the measuring instrument (the default listener perceiving held-out
corpus clips) finds each corpus's own tuning, and the generations are measured and
judged by the same rule. Whether trained models copy their tuning is the full run's
result (the report), not a CI assertion.
"""
import json
from pathlib import Path

import numpy as np
import pytest

import tests.test_train  # noqa: F401  (the shared compile cache)
from tests.experiment_scripts import load_script


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tuning_copy")
    script = load_script("tuning_copy")
    assert script.main(["--quick", "--out", str(out)]) == 0
    return script, out, json.loads((out / "results.json").read_text())


def test_the_listener_hears_each_corpus_in_its_own_tuning(quick_run):
    _, _, results = quick_run
    assert [r["tuning"] for r in results["tunings"]] == ["5-TET", "12-TET"]
    for r in results["tunings"]:
        corpus = r["sets"]["corpus_perceived"]
        own = corpus["tunings"][r["tuning"]]
        other = [s for t, s in corpus["tunings"].items() if t != r["tuning"]][0]
        assert r["corpus_follows_its_tuning"] is True
        assert own["enrichment"] > 2.5 and own["enrichment"] > 2 * other["enrichment"]
        assert own["mean_abs_error_cents"] < 15


def test_generations_are_measured_and_judged_by_the_same_rule(quick_run):
    script, out, results = quick_run
    for r in results["tunings"]:
        assert r["train"]["step"] == 2 and Path(r["workdir"], "checkpoints").is_dir()
        controls = r["sets"]["generated_controls"]
        assert controls["n_frames"] > 0
        for name in ("generated_perceived", "generated_controls"):
            expected = script.follows(r["sets"][name], r["tuning"])
            key = "generations_follow_its_tuning" if name == "generated_perceived" else "controls_follow_its_tuning"
            assert r[key] == expected
        chance = {"5-TET": 30 / 240, "12-TET": 30 / 100}
        for t, s in controls["tunings"].items():
            assert s["chance"] == pytest.approx(chance[t])
            assert np.isclose(s["enrichment"], s["within_window"] / s["chance"])
    assert results["generations_copy_the_training_tuning"] == all(
        r["generations_follow_its_tuning"] for r in results["tunings"])
    assert (out / "tuning_copy.png").stat().st_size > 0


def test_lattice_stats_against_hand_counts():
    script = load_script("tuning_copy")
    from pcmusic.data import parse_tuning

    f_ref = 261.6256
    cents = np.array([0.0, 240.0, 250.0, 480.0, 100.0, 1190.0])   # 5-TET hits: 0, 240, 250, 480, 1190
    stats = script.lattice_stats(f_ref * 2 ** (cents / 1200),
                                 {"5-TET": parse_tuning("5-TET"), "12-TET": parse_tuning("12-TET")},
                                 f_ref_hz=f_ref, window_cents=15.0)
    assert stats["5-TET"]["within_window"] == pytest.approx(5 / 6)
    assert stats["12-TET"]["within_window"] == pytest.approx(3 / 6)    # 0, 100, 1190
    assert stats["5-TET"]["mean_abs_error_cents"] == pytest.approx((0 + 0 + 10 + 0 + 100 + 10) / 6, abs=1e-6)


def test_bad_config_is_one_line_and_exit_2(tmp_path, capsys):
    assert load_script("tuning_copy").main(["--set", "tunings=[\"5-TET\"]", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at least two tunings" in err
