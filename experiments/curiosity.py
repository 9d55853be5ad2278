"""Curiosity experiment: compression progress of a PC listener (RESEARCH.md sec. 4).

Per seed, a fresh listener develops on an environment of melodies and noise
(`pcmusic.creative.curiosity.develop`); then, always from that experienced state:
- CP for a periodic tone pattern, a constant tone and white noise (learn on the first
  segment, evaluate on its held-out continuation);
- the decay of CP over repeated hearings of the periodic pattern;
- CP over random-walk melodies whose step entropy is swept (pcmusic.data melodies'
  temperature), averaged over several melodies per entropy;
- a data-free generator (`curiosity.search`) that evolves a piece (melody and timbre in
  Hz) to maximise CP while the listener learns from what it picks: its trajectory,
  with WAV snapshots.

    python experiments/curiosity.py [--config configs/curiosity.toml] [--out runs/curiosity]
                                     [--quick] [--force] [--set key=value ...]

Writes results.json, curiosity_probes.png, curiosity_search.png and search_*.wav.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pcmusic import audio as audio_io  # noqa: E402
from pcmusic.config import config_to_dict, load_config, require  # noqa: E402
from pcmusic.creative import coevolve as co  # noqa: E402
from pcmusic.creative import curiosity as cur  # noqa: E402
from pcmusic.creative import listener as lis  # noqa: E402
from pcmusic.data.melodies import temperature_for_entropy  # noqa: E402
from pcmusic.errors import PcmusicError  # noqa: E402

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "curiosity.toml"
QUICK = ["seeds=[0]", "n_develop=200", "n_melodies=8", "search.n_generations=20",
         "search.snapshot_every=10"]


@dataclasses.dataclass(frozen=True)
class Probes:
    n_train: int = 100
    n_heldout: int = 100
    constant_hz: float = 330.0
    pattern_hz: tuple[float, ...] = (330.0, 415.3, 493.9, 659.3)
    note_frames: int = 10
    noise_rms: float = 0.1
    brightness: float = 0.7
    n_repetitions: int = 10


@dataclasses.dataclass(frozen=True)
class Sweep:
    entropies_bits: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
    n_notes: int = 16
    n_train: int = 160
    n_heldout: int = 160


@dataclasses.dataclass(frozen=True)
class Search:
    n_generations: int = 120
    n_mutants: int = 8
    snapshot_every: int = 30
    space: co.PieceSpace = dataclasses.field(default_factory=co.PieceSpace)


@dataclasses.dataclass(frozen=True)
class CuriosityExperiment:
    seeds: tuple[int, ...] = (0, 1, 2)
    n_develop: int = 400
    n_learn: int = 10
    n_melodies: int = 16
    listener: lis.ListenerSpec = dataclasses.field(default_factory=lis.ListenerSpec)
    environment: cur.Environment = dataclasses.field(default_factory=cur.Environment)
    probes: Probes = dataclasses.field(default_factory=Probes)
    sweep: Sweep = dataclasses.field(default_factory=Sweep)
    search: Search = dataclasses.field(default_factory=Search)

    def __post_init__(self):
        require(len(self.seeds) >= 1, "seeds", "give at least one seed")
        top = np.log2(2 * self.environment.max_step + 1)
        require(all(0 <= b < top for b in self.sweep.entropies_bits), "sweep.entropies_bits",
                f"must lie in [0, {top:.3f}) bits for max_step={self.environment.max_step}")
        require(len(self.sweep.entropies_bits) >= 3, "sweep.entropies_bits",
                "need >= 3 entropies to locate a peak")


def probe_frames(cfg: CuriosityExperiment, key) -> dict:
    """Heard frames `[n_train + n_heldout, n_bands]` of the periodic, constant and noise probes."""
    spec, pr = cfg.listener, cfg.probes
    n = pr.n_train + pr.n_heldout
    env = jnp.full((n,), jnp.float32(cfg.environment.amplitude))
    constant = co.render_tone(jnp.full((n,), pr.constant_hz, jnp.float32), env, stretch=1.0,
                              brightness=pr.brightness, n_partials=cfg.environment.n_partials,
                              sample_rate=spec.sample_rate, hop=spec.hop)
    pattern = np.asarray(pr.pattern_hz, np.float32)[(np.arange(n) // pr.note_frames) % len(pr.pattern_hz)]
    periodic = co.render_tone(jnp.asarray(pattern), env, stretch=1.0, brightness=pr.brightness,
                              n_partials=cfg.environment.n_partials, sample_rate=spec.sample_rate,
                              hop=spec.hop)
    noise = cur.white_noise(key, pr.noise_rms, n_frames=n, spec=spec)
    return {name: lis.hear(a, spec=spec) for name, a in
            [("periodic", periodic), ("constant", constant), ("noise", noise)]}


def compiled(cfg: CuriosityExperiment) -> dict:
    spec, n_learn = cfg.listener, cfg.n_learn

    def cp(params, train, heldout):
        return lis.compression_progress(params, train, heldout, spec=spec, n_learn=n_learn)

    def melodies(key, temperature):
        sw = cfg.sweep
        n = sw.n_train + sw.n_heldout
        audio = jax.vmap(lambda k: cur.melody_audio(k, temperature, env=cfg.environment,
                                                    n_notes=sw.n_notes, n_frames=n, spec=spec))(
            jax.random.split(key, cfg.n_melodies))
        return lis.hear(audio, spec=spec)

    return {
        "develop": jax.jit(lambda p, k: cur.develop(p, k, env=cfg.environment, spec=spec,
                                                    n_batches=cfg.n_develop)),
        "cp": jax.jit(cp),   # one compiled (CP, params after) for probes, repetitions, sweep
        "melodies": jax.jit(melodies),
        "probes": jax.jit(lambda k: probe_frames(cfg, k)),
        "free_energy": jax.jit(lambda p, x, h: jnp.mean(lis.free_energy(p, x, spec=spec, history=h))),
        "render": jax.jit(lambda piece: co.render_piece(piece, space=cfg.search.space,
                                                        sample_rate=spec.sample_rate, hop=spec.hop)),
        "search": jax.jit(lambda p, piece, k: cur.search(
            p, piece, k, spec=spec, space=cfg.search.space, n_generations=cfg.search.n_generations,
            n_mutants=cfg.search.n_mutants, n_learn=n_learn)),
    }


def run_seed(cfg: CuriosityExperiment, seed: int, fns: dict, out_dir: Path) -> dict:
    k_init, k_env, k_noise, k_mel, k_piece, k_search = jax.random.split(jax.random.key(seed), 6)
    params = fns["develop"](lis.init_listener(cfg.listener, key=k_init), k_env)
    pr, sw = cfg.probes, cfg.sweep
    probes = fns["probes"](k_noise)
    cp = {name: float(fns["cp"](params, x[:pr.n_train], x[pr.n_train:])[0])
          for name, x in probes.items()}
    f_before = {name: float(fns["free_energy"](params, x[pr.n_train:],
                                               x[pr.n_train - cfg.listener.n_context:pr.n_train]))
                for name, x in probes.items()}
    x, heard, reps = probes["periodic"], params, []
    for _ in range(pr.n_repetitions):   # the listener keeps what it learned (curiosity.repeated_progress)
        progress, heard = fns["cp"](heard, x[:pr.n_train], x[pr.n_train:])
        reps.append(float(progress))
    reps = np.asarray(reps)

    sweep = []
    for i, bits in enumerate(sw.entropies_bits):
        temperature = temperature_for_entropy(bits, max_step=cfg.environment.max_step)
        frames = fns["melodies"](jax.random.fold_in(k_mel, i), jnp.float32(temperature))
        cps = np.asarray([float(fns["cp"](params, f[:sw.n_train], f[sw.n_train:])[0]) for f in frames])
        sweep.append({"entropy_bits": bits, "temperature": temperature, "cp_mean": float(cps.mean()),
                      "cp_sem": float(cps.std(ddof=1) / np.sqrt(len(cps)))})
    means = [s["cp_mean"] for s in sweep]
    peak = int(np.argmax(means))

    space = cfg.search.space
    start = co.random_piece(k_piece, space=space)
    _, trace = fns["search"](params, start, k_search)
    trace = jax.tree.map(np.asarray, trace)
    snapshots = []
    for g in range(0, cfg.search.n_generations, cfg.search.snapshot_every):
        piece = jax.tree.map(lambda a: a[g], trace.pieces)
        audio = fns["render"](piece)
        name = f"search_seed{seed}_gen{g:04d}.wav"
        audio_io.save(out_dir / name, np.asarray(audio), cfg.listener.sample_rate, overwrite=True)
        snapshots.append({"generation": g, "wav": name,
                          "notes_hz": np.exp2(piece.log2_hz[:int(piece.n_notes)]).round(2).tolist(),
                          "stretch": float(piece.stretch), "brightness": float(piece.brightness),
                          "cp": float(trace.progress[g])})
    types = [co.piece_type(jax.tree.map(lambda a: a[g], trace.pieces))
             for g in range(cfg.search.n_generations)]
    return {
        "seed": seed,
        "cp": cp, "free_energy_before": f_before,
        "ordering_periodic_gt_constant_gt_0_ge_noise":
            cp["periodic"] > cp["constant"] > 0 >= cp["noise"],
        "repetitions": {"cp": reps.tolist(), "tenth_over_first": float(reps[-1] / reps[0]) if
                        len(reps) >= 10 else None},
        "entropy_sweep": sweep, "peak_entropy_bits": sw.entropies_bits[peak],
        "peak_strictly_inside": 0 < peak < len(means) - 1,
        "search": {"cp": trace.progress.tolist(), "free_energy": trace.free_energy.tolist(),
                   "n_distinct_types": len(set(types)), "snapshots": snapshots,
                   "interval_entropy_bits": [co.type_interval_entropy(t) for t in types]},
        "_trace": trace,
    }


def plot(cfg: CuriosityExperiment, seeds: list[dict], out_dir: Path) -> list[str]:
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    names = ["periodic", "constant", "noise"]
    for i, s in enumerate(seeds):
        axes[0].bar(np.arange(3) + 0.8 * i / len(seeds), [s["cp"][n] for n in names],
                    width=0.8 / len(seeds), label=f"seed {s['seed']}")
        axes[1].semilogy(np.arange(1, len(s["repetitions"]["cp"]) + 1),
                         np.maximum(s["repetitions"]["cp"], 1e-6), "o-", label=f"seed {s['seed']}")
        sw = s["entropy_sweep"]
        axes[2].errorbar([x["entropy_bits"] for x in sw], [x["cp_mean"] for x in sw],
                         yerr=[x["cp_sem"] for x in sw], marker="o", capsize=2, label=f"seed {s['seed']}")
    axes[0].set_xticks(np.arange(3) + 0.4 - 0.4 / len(seeds), names)
    axes[0].axhline(0, color="k", lw=0.8)
    axes[0].set_ylabel("compression progress (nats / frame)")
    axes[1].set_xlabel("repetition of the periodic probe")
    axes[2].set_xlabel("melody step entropy (bits)")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "curiosity_probes.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    for s in seeds:
        tr = s["_trace"]
        g = np.arange(len(tr.progress))
        axes[0].plot(g, tr.progress, label=f"seed {s['seed']}: CP of the chosen piece")
        notes = [np.exp2(tr.pieces.log2_hz[i, :int(tr.pieces.n_notes[i])]) for i in g]
        axes[1].scatter(np.concatenate([np.full(len(n), i) for i, n in zip(g, notes)]),
                        np.concatenate(notes), s=3, label=f"seed {s['seed']}")
    axes[0].set_ylabel("CP (nats / frame)")
    axes[0].legend(fontsize=7)
    axes[1].set_yscale("log")
    axes[1].set_ylabel("note pitches (Hz)")
    axes[1].set_xlabel("generation")
    fig.tight_layout()
    fig.savefig(out_dir / "curiosity_search.png", dpi=120)
    plt.close(fig)
    return ["curiosity_probes.png", "curiosity_search.png"]


def run(cfg: CuriosityExperiment, out_dir: Path) -> dict:
    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    fns = compiled(cfg)
    seeds = [run_seed(cfg, s, fns, out_dir) for s in cfg.seeds]
    figures = plot(cfg, seeds, out_dir)
    for s in seeds:
        del s["_trace"]
    reps = [s["repetitions"]["tenth_over_first"] for s in seeds]
    results = {
        "config": config_to_dict(cfg), "seeds": seeds,
        "holds_for_all_seeds": {
            "ordering_periodic_gt_constant_gt_0_ge_noise":
                all(s["ordering_periodic_gt_constant_gt_0_ge_noise"] for s in seeds),
            "tenth_repetition_below_5_percent": all(r is not None and r < 0.05 for r in reps),
            "entropy_peak_strictly_inside": all(s["peak_strictly_inside"] for s in seeds)},
        "figures": figures, "seconds": time.perf_counter() - t0}
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    return results


def summary(results: dict) -> str:
    lines = []
    for s in results["seeds"]:
        cp = ", ".join(f"{k} {v:.3f}" for k, v in s["cp"].items())
        sweep = " ".join(f"{x['entropy_bits']:g}:{x['cp_mean']:.2f}" for x in s["entropy_sweep"])
        lines.append(f"seed {s['seed']}: CP {cp}; 10th/1st repetition "
                     f"{s['repetitions']['tenth_over_first']}; entropy sweep {sweep}; search "
                     f"{s['search']['n_distinct_types']} distinct types")
    lines.append("holds for all seeds: " + ", ".join(f"{k}={v}" for k, v in
                                                    results["holds_for_all_seeds"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--out", default="runs/curiosity", help="output folder")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {' '.join(QUICK)}")
    parser.add_argument("--force", action="store_true", help="overwrite an earlier results.json")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override, e.g. --set n_learn=5")
    args = parser.parse_args(argv)
    out_dir = Path(args.out)
    if (out_dir / "results.json").is_file() and not args.force:
        raise PcmusicError(f"{out_dir / 'results.json'} exists: pass --force to overwrite it "
                           "or choose another --out")
    cfg = load_config(args.config, schema=CuriosityExperiment,
                      overrides=(QUICK if args.quick else []) + args.overrides)
    results = run(cfg, out_dir)
    print(summary(results))
    print(f"{results['seconds']:.1f} s; wrote {out_dir / 'results.json'}")
    return results


if __name__ == "__main__":
    try:
        main()
    except PcmusicError as err:
        sys.exit(f"error: {err}")
