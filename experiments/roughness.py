"""Roughness experiment: consonant intervals as minima of Sethares' roughness, and how
they move with the timbre (Sethares 1993).

For each timbre (harmonic or stretched partials) the dyad roughness curve is descended
by Adam on log(ratio) from random starts within +-1.5% of each predicted minimum (the
ratio where partial p of the lower tone meets partial q of the upper one); the descent
sees only its start. A dense grid scan lists the curve's local minima independently.
A control descends from the same starts by fixed-step gradient descent (the same
learning rate, no decay, no Adam): cusps throw it off. Probes are ratios expected not
to be minima (3/2 for stretched partials): descent from near them must leave, and the
grid must show no minimum there.

    python experiments/roughness.py [--config configs/roughness.toml] [--out runs/roughness]
                                     [--quick] [--force] [--set key=value ...]

Writes results.json and roughness_curves.png into --out.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
from matplotlib.figure import Figure
import numpy as np
import optax

from pcmusic import experiment, outputs
from pcmusic.configio import config_to_dict, require
from pcmusic.creative.roughness import find_minima, scan_minima

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "roughness.toml"
QUICK = ["n_starts=4", "fixed_step_control=false"]  # the method itself, fewer starts: CI's smoke run


@dataclasses.dataclass(frozen=True)
class Timbre:
    name: str = "harmonic, 6 partials"
    n_partials: int = 6
    pseudo_octave: float = 2.0
    intervals: tuple[tuple[int, int], ...] = ((6, 5), (5, 4), (4, 3), (3, 2), (5, 3), (2, 1))
    probes: tuple[float, ...] = ()

    def __post_init__(self):
        require(self.n_partials >= 2, "n_partials", f"must be >= 2, got {self.n_partials}")
        require(self.pseudo_octave > 1, "pseudo_octave", f"must be > 1, got {self.pseudo_octave}")
        require(all(1 <= q <= p <= self.n_partials for p, q in self.intervals), "intervals",
                f"each [p, q] needs 1 <= q <= p <= n_partials = {self.n_partials}, "
                f"got {list(self.intervals)}")


@dataclasses.dataclass(frozen=True)
class Grid:
    ratio_min: float = 1.0
    ratio_max: float = 2.3
    n_points: int = 13001


@dataclasses.dataclass(frozen=True)
class RoughnessExperiment:
    seed: int = 0
    f0_hz: float = 500.0
    amplitude_decay: float = 0.88
    n_starts: int = 16
    start_spread: float = 0.015
    n_steps: int = 3000
    learning_rate: float = 3e-3
    tolerance: float = 1e-3
    fixed_step_control: bool = True
    grid: Grid = dataclasses.field(default_factory=Grid)
    timbres: tuple[Timbre, ...] = (Timbre(),)

    def __post_init__(self):
        for name in ("f0_hz", "n_starts", "n_steps", "learning_rate", "tolerance"):
            require(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        require(0 < self.start_spread < 0.5, "start_spread",
                f"must be in (0, 0.5), got {self.start_spread}")


def _starts(cfg: RoughnessExperiment, centres: np.ndarray, key) -> np.ndarray:
    """float32 [n_centres, n_starts], uniform within +-start_spread of each centre."""
    u = jax.random.uniform(key, (len(centres), cfg.n_starts), minval=-cfg.start_spread,
                           maxval=cfg.start_spread)
    return (centres[:, None] * (1.0 + np.asarray(u))).astype(np.float32)


def _descend(cfg: RoughnessExperiment, timbre: Timbre, starts: np.ndarray, optimizer) -> np.ndarray:
    return np.asarray(find_minima(
        starts.ravel(), f0_hz=cfg.f0_hz, n_partials=timbre.n_partials,
        pseudo_octave=timbre.pseudo_octave, amplitude_decay=cfg.amplitude_decay,
        n_steps=cfg.n_steps, optimizer=optimizer)).reshape(starts.shape)


def run_timbre(cfg: RoughnessExperiment, timbre: Timbre, key, *, adam, control) -> dict:
    """Grid scan plus descents; `control` (an optimizer or None) is the fixed-step run."""
    curve = scan_minima(f0_hz=cfg.f0_hz, n_partials=timbre.n_partials,
                        pseudo_octave=timbre.pseudo_octave, amplitude_decay=cfg.amplitude_decay,
                        ratio_min=cfg.grid.ratio_min, ratio_max=cfg.grid.ratio_max,
                        n_points=cfg.grid.n_points)
    grid_step = float(curve.ratios[1] - curve.ratios[0])
    stretch = np.log2(timbre.pseudo_octave)
    predicted = np.array([(p / q) ** stretch for p, q in timbre.intervals], np.float32)
    n = len(predicted)
    # intervals and probes descend in one call: one compilation per timbre
    starts = _starts(cfg, np.concatenate([predicted, np.array(timbre.probes, np.float32)]), key)
    finals = _descend(cfg, timbre, starts, adam)
    ctrl = _descend(cfg, timbre, starts[:n], control) if control is not None else None
    descents = []
    for i, ((p, q), target) in enumerate(zip(timbre.intervals, predicted)):
        errors = np.abs(finals[i] - target)
        descents.append({
            "interval": f"{p}/{q}", "predicted": float(target),
            "starts": starts[i].tolist(), "finals": finals[i].tolist(), "errors": errors.tolist(),
            "max_error": float(errors.max()), "converged": bool(errors.max() < cfg.tolerance),
            "fixed_step_gd_max_error": None if ctrl is None else float(np.abs(ctrl[i] - target).max()),
            "grid_minimum_at_prediction": bool(np.min(np.abs(curve.minima - target),
                                                      initial=np.inf) <= grid_step)})
    probes = []
    for centre, start, final in zip(timbre.probes, starts[n:], finals[n:]):
        window = cfg.start_spread * centre
        probes.append({
            "ratio": centre, "starts": start.tolist(), "finals": final.tolist(),
            "min_distance_from_probe": float(np.min(np.abs(final - centre))),
            "descent_left": bool(np.min(np.abs(final - centre)) > window),
            "grid_minima_within_spread": curve.minima[np.abs(curve.minima - centre)
                                                      <= window].tolist()})
    return {"name": timbre.name, "n_partials": timbre.n_partials,
            "pseudo_octave": timbre.pseudo_octave, "grid_step": grid_step,
            "grid_minima": curve.minima.tolist(), "descents": descents, "probes": probes,
            "_curve": curve}


def plot(timbres: list[dict], path: Path) -> None:
    fig = Figure(figsize=(9, 2.6 * len(timbres)))
    axes = fig.subplots(len(timbres), 1, sharex=True, squeeze=False)
    for ax, t in zip(axes[:, 0], timbres):
        curve = t["_curve"]
        ax.plot(curve.ratios, curve.roughness, lw=1.0, color="0.2")
        ax.plot(curve.minima, np.interp(curve.minima, curve.ratios, curve.roughness), "o",
                ms=4, mfc="none", color="tab:blue", label="grid minima")
        finals = np.concatenate([np.array(d["finals"]) for d in t["descents"] + t["probes"]])
        ax.plot(finals, np.interp(finals, curve.ratios, curve.roughness), "x", color="tab:red",
                label="Adam on log(ratio): final")
        for pr in t["probes"]:
            ax.axvline(pr["ratio"], ls="--", color="tab:green", lw=0.8, label=f"probe {pr['ratio']}")
        ax.set_title(f"{t['name']} (pseudo-octave {t['pseudo_octave']})", fontsize=9)
        ax.set_ylabel("roughness")
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("frequency ratio of the dyad")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def run(cfg: RoughnessExperiment, out_dir: Path) -> dict:
    t0 = time.perf_counter()
    keys = jax.random.split(jax.random.key(cfg.seed), len(cfg.timbres))
    # built once: find_minima compiles once per optimizer object and timbre shape
    adam = optax.adam(optax.cosine_decay_schedule(cfg.learning_rate, cfg.n_steps))
    control = optax.sgd(cfg.learning_rate) if cfg.fixed_step_control else None
    timbres = [run_timbre(cfg, timbre, k, adam=adam, control=control)
               for timbre, k in zip(cfg.timbres, keys)]
    out_dir.mkdir(parents=True, exist_ok=True)
    plot(timbres, out_dir / "roughness_curves.png")
    for t in timbres:
        del t["_curve"]
    results = {
        "config": config_to_dict(cfg),
        "timbres": timbres,
        "all_converged": all(d["converged"] for t in timbres for d in t["descents"]),
        "all_probes_left": all(p["descent_left"] and not p["grid_minima_within_spread"]
                               for t in timbres for p in t["probes"]),
        "figures": ["roughness_curves.png"],
        "seconds": time.perf_counter() - t0,
    }
    outputs.write_atomic(out_dir / "results.json", json.dumps(results, indent=1))
    return results


def summary(results: dict) -> str:
    lines = []
    for t in results["timbres"]:
        cells = [f"{d['interval']}->{np.median(d['finals']):.4f} (err {d['max_error']:.1e}"
                 + ("" if d["fixed_step_gd_max_error"] is None
                    else f", fixed-step GD {d['fixed_step_gd_max_error']:.1e}") + ")"
                 for d in t["descents"]]
        cells += [f"probe {p['ratio']} left to {sorted({round(f, 4) for f in p['finals']})}"
                  for p in t["probes"]]
        lines.append(f"{t['name']}: " + ", ".join(cells))
    lines.append(f"all converged: {results['all_converged']}; probes left: {results['all_probes_left']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    return experiment.main(argv, description=__doc__.split("\n\n")[0], schema=RoughnessExperiment,
                           default_config=DEFAULT_CONFIG, default_out="runs/roughness", quick=QUICK,
                           run=run, summary=summary, set_example="n_starts=8")


if __name__ == "__main__":
    experiment.entry(main)
