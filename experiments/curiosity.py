"""Curiosity experiment: compression progress of a PC listener (Schmidhuber 2010).

Per seed, a fresh listener develops on an environment of melodies and noise
(`pcmusic.creative.curiosity.develop`); then, always from that experienced state:
- CP for three processes: a periodic tone pattern (a loop of distinct pitches), a
  constant tone and white noise (learn on the first segment, evaluate on the held-out
  continuation; noise's held-out segment is an independent draw). Each is scored twice
  on the same instances: by the developed listener ("developed") and after the listener
  has heard `n_familiar` other instances of the same process ("familiar": it knows the
  process, so what is left is what a new instance brings; Schmidhuber's noise is boring
  to an observer that already knows noise);
- the decay of CP over repeated hearings of one periodic instance;
- CP over melodies of swept interval entropy, two ways: looped random motifs of
  1..n notes (`curiosity.motif_audio`: entropy and learnable sequential structure
  together) and, as a control, i.i.d. random walks at a swept step entropy
  (`pcmusic.data.melodies`: no structure beyond the step distribution);
- a data-free generator (`curiosity.search`) that evolves a piece (melody and timbre in
  Hz) to maximise CP while the listener learns from what it picks: its trajectory,
  with WAV snapshots.

    python experiments/curiosity.py [--config configs/curiosity.toml] [--out runs/curiosity]
                                     [--quick] [--force] [--set key=value ...]

Writes results.json, curiosity_probes.png, curiosity_search.png and search_*.wav.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from matplotlib.figure import Figure
import numpy as np

from pcmusic.dsp import audio as audio_io
from pcmusic import experiment, outputs
from pcmusic.configio import config_to_dict, require
from pcmusic.creative import coevolve as co
from pcmusic.creative import curiosity as cur
from pcmusic.creative import listener as lis
from pcmusic.data.melodies import temperature_for_entropy

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "curiosity.toml"
QUICK = ["seeds=[0]", "n_develop=200", "n_melodies=4", "probes.n_familiar=4",
         "probes.n_measure=3", "search.n_generations=20", "search.snapshot_every=10"]
KINDS = ("periodic", "constant", "noise")


@dataclasses.dataclass(frozen=True)
class Probes:
    n_train: int = 100
    n_heldout: int = 100
    n_pattern_notes: int = 4
    note_frames: int = 10
    noise_rms: float = 0.1
    brightness: float = 0.7
    n_familiar: int = 10
    n_measure: int = 6
    n_repetitions: int = 10


@dataclasses.dataclass(frozen=True)
class Sweep:
    entropies_bits: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
    n_notes: int = 16
    n_train: int = 160
    n_heldout: int = 160


@dataclasses.dataclass(frozen=True)
class MotifSweep:
    motif_lengths: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 10, 20)
    n_notes: int = 20
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
    motif_sweep: MotifSweep = dataclasses.field(default_factory=MotifSweep)
    search: Search = dataclasses.field(default_factory=Search)

    def __post_init__(self):
        require(len(self.seeds) >= 1, "seeds", "give at least one seed")
        top = np.log2(2 * self.environment.max_step + 1)
        require(all(0 <= b < top for b in self.sweep.entropies_bits), "sweep.entropies_bits",
                f"must lie in [0, {top:.3f}) bits for max_step={self.environment.max_step}")
        require(len(self.sweep.entropies_bits) >= 3, "sweep.entropies_bits",
                "need >= 3 entropies to locate a peak")
        lengths = self.motif_sweep.motif_lengths
        require(len(lengths) >= 3 and list(lengths) == sorted(set(lengths)) and lengths[0] >= 1,
                "motif_sweep.motif_lengths", f"need >= 3 increasing lengths >= 1, got {lengths}")
        require(self.probes.n_measure >= 2, "probes.n_measure", "need >= 2 instances for an error bar")
        require(self.probes.n_train >= self.listener.n_context, "probes.n_train",
                f"must be >= listener.n_context = {self.listener.n_context}")


def probe_frames(cfg: CuriosityExperiment, kind: str, key) -> jax.Array:
    """Heard frames `[n_train + n_heldout, n_bands]` of one instance of a probe process.
    Periodic: `n_pattern_notes` distinct pitches of the environment's lattice in a loop;
    constant: the first of those pitches held (the same key gives paired instances);
    noise: white noise whose held-out part is an independent draw."""
    spec, pr = cfg.listener, cfg.probes
    n = pr.n_train + pr.n_heldout
    if kind == "noise":
        k_train, k_heldout = jax.random.split(key)
        audio = jnp.concatenate([
            cur.white_noise(k_train, pr.noise_rms, n_frames=pr.n_train, spec=spec),
            cur.white_noise(k_heldout, pr.noise_rms, n_frames=pr.n_heldout, spec=spec)])
    else:
        pitches = jax.random.choice(key, jnp.asarray(cfg.environment.lattice_hz(), jnp.float32),
                                    (pr.n_pattern_notes,), replace=False)
        audio = cur.tone_pattern_audio(pitches if kind == "periodic" else pitches[:1],
                                       env=cfg.environment, note_frames=pr.note_frames,
                                       n_frames=n, spec=spec, brightness=pr.brightness)
    return lis.hear(audio, spec=spec)


def compiled(cfg: CuriosityExperiment) -> dict:
    spec, n_learn, pr = cfg.listener, cfg.n_learn, cfg.probes

    def cp_each(params, frames, n_train):
        """CP of every clip `[n, n_frames, n_bands]` from the same params: `[n]`."""
        return jax.vmap(lambda x: lis.compression_progress(params, x[:n_train], x[n_train:], spec=spec,
                                                           n_learn=n_learn)[0])(frames)

    def probes(params, key):
        out = {}
        for kind in KINDS:   # periodic and constant instances share keys: paired pitches
            keys = jax.random.split(jax.random.fold_in(key, int(kind == "noise")),
                                    pr.n_familiar + pr.n_measure)
            x = jax.vmap(lambda k, kind=kind: probe_frames(cfg, kind, k))(keys)
            _, sequence = cur.sequential_progress(params, x[:, :pr.n_train], x[:, pr.n_train:],
                                                  spec=spec, n_learn=n_learn)
            out[kind] = {"developed": cp_each(params, x[pr.n_familiar:], pr.n_train),
                         "sequence": sequence}
            if kind == "periodic":   # the first of the n_measure instances, heard again and again
                first = x[pr.n_familiar]
                out["repetitions"] = cur.repeated_progress(
                    params, first[:pr.n_train], first[pr.n_train:], spec=spec, n_learn=n_learn,
                    n_repetitions=pr.n_repetitions)
        return out

    def iid_melodies(params, key, temperature):
        sw = cfg.sweep
        audio = jax.vmap(lambda k: cur.melody_audio(k, temperature, env=cfg.environment,
                                                    n_notes=sw.n_notes, n_frames=sw.n_train + sw.n_heldout,
                                                    spec=spec))(jax.random.split(key, cfg.n_melodies))
        return cp_each(params, lis.hear(audio, spec=spec), sw.n_train)

    def motifs(params, key, n_motif):
        ms = cfg.motif_sweep
        audio, degrees = jax.vmap(lambda k: cur.motif_audio(
            k, n_motif, env=cfg.environment, n_notes=ms.n_notes, n_frames=ms.n_train + ms.n_heldout,
            spec=spec))(jax.random.split(key, cfg.n_melodies))
        return cp_each(params, lis.hear(audio, spec=spec), ms.n_train), degrees

    return {
        "develop": jax.jit(lambda p, k: cur.develop(p, k, env=cfg.environment, spec=spec,
                                                    n_batches=cfg.n_develop)),
        "probes": jax.jit(probes),
        "iid": jax.jit(iid_melodies),
        "motifs": jax.jit(motifs),
        "render": jax.jit(lambda piece: co.render_piece(piece, space=cfg.search.space,
                                                        sample_rate=spec.sample_rate, hop=spec.hop)),
        "search": jax.jit(lambda p, piece, k: cur.search(
            p, piece, k, spec=spec, space=cfg.search.space, n_generations=cfg.search.n_generations,
            n_mutants=cfg.search.n_mutants, n_learn=n_learn)),
    }


def _mean_sem(x) -> tuple[float, float]:
    x = np.asarray(x, np.float64)
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0


def _ordering(cp: dict) -> bool:
    return bool(cp["periodic"] > cp["constant"] > 0 >= cp["noise"])


def _peak(points: list[dict]) -> tuple[float, bool]:
    """Entropy at the largest mean CP, and whether it lies strictly inside the swept range
    (points ordered by entropy)."""
    means = [p["cp_mean"] for p in points]
    i = int(np.argmax(means))
    return points[i]["entropy_bits"], 0 < i < len(means) - 1


def run_seed(cfg: CuriosityExperiment, seed: int, fns: dict, out_dir: Path) -> dict:
    k_init, k_env, k_probe, k_mel, k_motif, k_piece, k_search = jax.random.split(
        jax.random.key(seed), 7)
    params = fns["develop"](lis.init_listener(cfg.listener, key=k_init), k_env)
    pr = cfg.probes
    probes = jax.tree.map(np.asarray, fns["probes"](params, k_probe))
    cp, cp_familiar, sem, sem_familiar = {}, {}, {}, {}
    for kind in KINDS:
        cp[kind], sem[kind] = _mean_sem(probes[kind]["developed"])
        cp_familiar[kind], sem_familiar[kind] = _mean_sem(probes[kind]["sequence"][pr.n_familiar:])
    reps = probes["repetitions"]

    iid = []
    for i, bits in enumerate(cfg.sweep.entropies_bits):
        temperature = temperature_for_entropy(bits, max_step=cfg.environment.max_step)
        m, s = _mean_sem(fns["iid"](params, jax.random.fold_in(k_mel, i), jnp.float32(temperature)))
        iid.append({"entropy_bits": bits, "temperature": temperature, "cp_mean": m, "cp_sem": s})
    motif = []
    for n_motif in cfg.motif_sweep.motif_lengths:
        cps, degrees = fns["motifs"](params, jax.random.fold_in(k_motif, n_motif), jnp.int32(n_motif))
        m, s = _mean_sem(cps)
        motif.append({"motif_notes": n_motif, "cp_mean": m, "cp_sem": s, "entropy_bits": float(np.mean(
            [cur.heard_interval_entropy(d) for d in np.asarray(degrees)]))})
    iid_peak, iid_inside = _peak(iid)
    motif_peak, motif_inside = _peak(motif)

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
        "cp": cp, "cp_sem": sem, "cp_familiar": cp_familiar, "cp_familiar_sem": sem_familiar,
        "cp_sequences": {kind: probes[kind]["sequence"].tolist() for kind in KINDS},
        "ordering_developed": _ordering(cp),
        "ordering_familiar": _ordering(cp_familiar),
        "noise_familiar_not_above_2_sem": cp_familiar["noise"] <= 2.0 * sem_familiar["noise"],
        "repetitions": {"cp": reps.tolist(), "tenth_over_first": float(reps[-1] / reps[0]) if
                        len(reps) >= 10 else None},
        "motif_sweep": motif, "motif_peak_entropy_bits": motif_peak,
        "motif_peak_strictly_inside": motif_inside,
        "entropy_sweep": iid, "peak_entropy_bits": iid_peak, "peak_strictly_inside": iid_inside,
        "search": {"cp": trace.progress.tolist(), "free_energy": trace.free_energy.tolist(),
                   "n_distinct_types": len(set(types)), "snapshots": snapshots,
                   "interval_entropy_bits": [co.type_interval_entropy(t) for t in types]},
        "_trace": trace,
    }


def plot(cfg: CuriosityExperiment, seeds: list[dict], out_dir: Path) -> list[str]:
    fig = Figure(figsize=(10, 7))
    axes = fig.subplots(2, 2)
    (bars, sequences), (repetitions, sweeps) = axes
    colours = {"periodic": "C0", "constant": "C1", "noise": "C2"}
    width = 0.8 / (2 * len(seeds))
    for i, s in enumerate(seeds):
        for j, (key, hatch) in enumerate([("cp", None), ("cp_familiar", "//")]):
            x = np.arange(3) + width * (2 * i + j)
            bars.bar(x, [s[key][k] for k in KINDS], width=width, hatch=hatch,
                     yerr=[s[key + "_sem"][k] for k in KINDS], capsize=2,
                     color=[colours[k] for k in KINDS], edgecolor="k", lw=0.5)
        for kind in KINDS:
            sequences.plot(np.arange(1, len(s["cp_sequences"][kind]) + 1), s["cp_sequences"][kind],
                           "o-", ms=3, color=colours[kind], alpha=0.7,
                           label=kind if i == 0 else None)
        repetitions.semilogy(np.arange(1, len(s["repetitions"]["cp"]) + 1),
                             np.maximum(s["repetitions"]["cp"], 1e-6), "o-", label=f"seed {s['seed']}")
        for key, style, name in [("motif_sweep", "o-", "looped motifs"),
                                 ("entropy_sweep", "s--", "i.i.d. steps (control)")]:
            sw = s[key]
            sweeps.errorbar([p["entropy_bits"] for p in sw], [p["cp_mean"] for p in sw],
                            yerr=[p["cp_sem"] for p in sw], fmt=style, ms=4, capsize=2,
                            color=f"C{i}", alpha=0.8 if key == "motif_sweep" else 0.4,
                            label=f"seed {s['seed']}: {name}")
    bars.set_xticks(np.arange(3) + width * (len(seeds) - 0.5), KINDS)
    bars.axhline(0, color="k", lw=0.8)
    bars.set_ylabel("CP (nats / frame)")
    bars.set_title("plain: developed listener; hatched: familiar with the process", fontsize=8)
    sequences.axvline(cfg.probes.n_familiar + 0.5, color="k", lw=0.8, ls=":")
    sequences.axhline(0, color="k", lw=0.8)
    sequences.set_yscale("symlog", linthresh=0.01)
    sequences.set_xlabel("new instance of the process (measured right of the dotted line)")
    sequences.set_ylabel("CP (nats / frame)")
    repetitions.set_xlabel("repetition of one periodic instance")
    repetitions.set_ylabel("CP (nats / frame)")
    sweeps.set_xlabel("interval entropy of the melody (bits)")
    sweeps.set_ylabel("CP (nats / frame)")
    for ax in (sequences, repetitions, sweeps):
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out_dir / "curiosity_probes.png", dpi=120)

    fig = Figure(figsize=(8, 5))
    axes = fig.subplots(2, 1, sharex=True)
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
            "ordering_developed": all(s["ordering_developed"] for s in seeds),
            "ordering_familiar": all(s["ordering_familiar"] for s in seeds),
            "noise_familiar_not_above_2_sem": all(s["noise_familiar_not_above_2_sem"] for s in seeds),
            "tenth_repetition_below_5_percent": all(r is not None and r < 0.05 for r in reps),
            "motif_entropy_peak_strictly_inside": all(s["motif_peak_strictly_inside"] for s in seeds),
            "iid_entropy_peak_strictly_inside": all(s["peak_strictly_inside"] for s in seeds)},
        "figures": figures, "seconds": time.perf_counter() - t0}
    outputs.write_atomic(out_dir / "results.json", json.dumps(results, indent=1))
    return results


def summary(results: dict) -> str:
    lines = []
    for s in results["seeds"]:
        cp = ", ".join(f"{k} {s['cp'][k]:+.3f}/{s['cp_familiar'][k]:+.4f}+-{s['cp_familiar_sem'][k]:.4f}"
                       for k in KINDS)
        motif = " ".join(f"{x['entropy_bits']:.1f}:{x['cp_mean']:.2f}" for x in s["motif_sweep"])
        iid = " ".join(f"{x['entropy_bits']:g}:{x['cp_mean']:.2f}" for x in s["entropy_sweep"])
        lines.append(f"seed {s['seed']}: CP developed/familiar {cp}; 10th/1st repetition "
                     f"{s['repetitions']['tenth_over_first']:.4f}\n  motif sweep (bits:CP) {motif}\n"
                     f"  i.i.d. sweep {iid}; search {s['search']['n_distinct_types']} distinct types")
    lines.append("holds for all seeds: " + ", ".join(f"{k}={v}" for k, v in
                                                    results["holds_for_all_seeds"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    return experiment.main(argv, description=__doc__.split("\n\n")[0], schema=CuriosityExperiment,
                           default_config=DEFAULT_CONFIG, default_out="runs/curiosity", quick=QUICK,
                           run=run, summary=summary, set_example="n_learn=5")


if __name__ == "__main__":
    experiment.entry(main)
