"""Figures: no process-wide matplotlib state, axes of the caller's figure, atomic PNGs."""
import os

import numpy as np
import pytest
from matplotlib.figure import Figure

from pcmusic import plots

SR = 16000


def tone(f0_hz=440.0, seconds=0.25):
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * f0_hz * t)).astype(np.float32)


def backend_after_import_plot_and_save() -> dict:
    """Run in a fresh process whose backend is "svg" (MPLBACKEND): import pcmusic.plots,
    draw and save every figure; what matplotlib then reports."""
    import sys
    import tempfile

    import matplotlib

    chosen = matplotlib.get_backend()
    from pcmusic import plots as p

    x = tone()
    with tempfile.TemporaryDirectory() as d:
        p.save_sample(os.path.join(d, "s.png"), x, SR, energy=[2.0, 1.0], listen_energy=[1.0, 0.5])
        p.save_pitch_track(os.path.join(d, "p.png"), x, SR, np.full((1, 10), 440.0), 125.0)
        p.save_training_curves(os.path.join(d, "t.png"), [{"split": "train", "step": 1, "energy": 1.0}])
    pyplot = "matplotlib.pyplot" in sys.modules
    return {"chosen": np.asarray(chosen), "after": np.asarray(matplotlib.get_backend()),
            "pyplot": np.asarray(pyplot)}


def test_importing_and_plotting_leave_the_backend_alone(fresh_process, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "svg")              # what a notebook's backend stands for
    result = fresh_process("tests.test_plots", "backend_after_import_plot_and_save")
    assert str(result["chosen"]) == "svg"
    assert str(result["after"]) == "svg"
    assert not result["pyplot"]                    # no figure manager, nothing to leak


def test_a_panel_is_drawn_into_the_given_axes_and_its_figure_returned():
    fig = Figure()
    ax_s, ax_f, ax_e, ax_t = fig.subplots(1, 4)
    assert plots.plot_spectrogram(tone(), SR, ax=ax_s, f_max_hz=2000.0) is fig
    assert ax_s.get_ylim() == (0.0, 2000.0) and len(ax_s.collections) == 1
    assert plots.plot_f0(np.full((2, 10), 440.0), 125.0, ax=ax_f) is fig
    assert len(ax_f.lines) == 2
    np.testing.assert_allclose(ax_f.lines[0].get_xdata(), np.arange(10) / 125.0)
    assert plots.plot_energy([3.0, 2.0, 1.0], ax=ax_e) is fig
    np.testing.assert_array_equal(ax_e.lines[0].get_ydata(), [3.0, 2.0, 1.0])
    assert plots.plot_training_curves([{"split": "eval", "step": 4, "energy": 1.5}], ax=ax_t) is fig
    assert len(fig.axes) == 4                            # drawn in place, no axes added


@pytest.mark.parametrize("make", [
    lambda: plots.plot_spectrogram(tone(), SR),
    lambda: plots.plot_sample(tone(), SR, energy=[2.0, 1.0]),
    lambda: plots.plot_pitch_track(tone(), SR, np.full((1, 10), 440.0), 125.0, reference_hz=440.0),
    lambda: plots.plot_training_curves([]),
])
def test_without_axes_a_new_figure_is_returned(make):
    fig = make()
    assert isinstance(fig, Figure) and fig.axes


def test_save_writes_a_png_atomically(tmp_path, monkeypatch):
    path = plots.save_sample(tmp_path / "s.png", tone(), SR, energy=[2.0, 1.0])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", fail)
    with pytest.raises(RuntimeError):
        plots.save_sample(path, tone(880.0), SR)
    assert path.read_bytes() == before                   # the old figure, whole
    assert sorted(os.listdir(tmp_path)) == ["s.png"]     # no temporary file left
