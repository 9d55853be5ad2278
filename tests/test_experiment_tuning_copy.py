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

from tests.experiment_scripts import load_script


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """(script, out dir, results.json, raw): raw[tuning][set] is every f0 (Hz) the run
    measured for that set, caught on its way out of the script's run_tuning."""
    out = tmp_path_factory.mktemp("tuning_copy")
    script = load_script("tuning_copy")
    raw, run_tuning = {}, script.run_tuning

    def recording(exp, tuning, *args, **kwargs):
        result = run_tuning(exp, tuning, *args, **kwargs)
        raw[tuning] = {name: np.array(f0, np.float64) for name, f0 in result["_f0"].items()}
        return result

    script.run_tuning = recording
    assert script.main(["--quick", "--out", str(out)]) == 0
    return script, out, json.loads((out / "results.json").read_text()), raw


def tet_stats(f0_hz, n_steps, *, f_ref_hz, window_cents):
    """(mean |error|, fraction within the window, enrichment) of f0s against n-TET anchored
    at f_ref_hz, from the definition in plain numpy: the error is the distance in cents to
    the nearest multiple of 1200 / n_steps; chance is the lattice's share of the octave."""
    if f0_hz.size == 0:
        return None, float("nan"), None
    step = 1200.0 / n_steps
    cents = 1200.0 * np.log2(f0_hz / f_ref_hz)
    error = np.abs(np.mod(cents + step / 2, step) - step / 2)
    within = np.mean(error <= window_cents)
    return error.mean(), within, within / (2 * window_cents / step)


def test_the_listener_hears_each_corpus_in_its_own_tuning(quick_run):
    _, _, results, _ = quick_run
    assert [r["tuning"] for r in results["tunings"]] == ["5-TET", "12-TET"]
    for r in results["tunings"]:
        corpus = r["sets"]["corpus_perceived"]
        own = corpus["tunings"][r["tuning"]]
        other = [s for t, s in corpus["tunings"].items() if t != r["tuning"]][0]
        assert r["corpus_follows_its_tuning"] is True
        assert own["enrichment"] > 2.5 and own["enrichment"] > 2 * other["enrichment"]
        assert own["mean_abs_error_cents"] < 15


def test_statistics_and_verdicts_recomputed_from_the_measured_f0s(quick_run):
    """Every number and verdict in results.json, recomputed from the f0s the run measured
    with plain numpy and the rule the script's docstring states: a set follows tuning T
    when its enrichment for T is at least 2 (twice chance) and above every other's."""
    _, out, results, raw = quick_run
    window = results["config"]["window_cents"]
    f_ref = results["config"]["run"]["data"]["f_ref_hz"]
    n_steps = {"5-TET": 5, "12-TET": 12}
    verdicts = []
    for r in results["tunings"]:
        assert r["train"]["step"] == 2 and Path(r["workdir"], "checkpoints").is_dir()
        assert set(r["sets"]) == set(raw[r["tuning"]]) == {"corpus_perceived", "generated_perceived",
                                                            "generated_controls"}
        assert raw[r["tuning"]]["generated_controls"].size > 0
        for name, stats in r["sets"].items():
            f0 = raw[r["tuning"]][name]
            assert stats["n_frames"] == f0.size
            if f0.size:
                assert stats["median_f0_hz"] == pytest.approx(np.median(f0))
            enrichment = {}
            for t, s in stats["tunings"].items():
                assert s["chance"] == pytest.approx({"5-TET": 30 / 240, "12-TET": 30 / 100}[t])
                error, within, enrichment[t] = tet_stats(f0, n_steps[t], f_ref_hz=f_ref, window_cents=window)
                if f0.size:
                    assert s["mean_abs_error_cents"] == pytest.approx(error, abs=1e-6)
                    assert s["within_window"] == pytest.approx(within)
                    assert s["enrichment"] == pytest.approx(enrichment[t])
                else:
                    assert s["enrichment"] is None
            own = enrichment[r["tuning"]]
            follows = None if own is None else bool(
                own >= 2.0 and all(own > e for t, e in enrichment.items() if t != r["tuning"]))
            key = {"corpus_perceived": "corpus_follows_its_tuning",
                   "generated_perceived": "generations_follow_its_tuning",
                   "generated_controls": "controls_follow_its_tuning"}[name]
            assert r[key] == follows, (r["tuning"], name, enrichment)
            if name == "generated_perceived":
                verdicts.append(follows)
    assert results["generations_copy_the_training_tuning"] == all(verdicts)
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
