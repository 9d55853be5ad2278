"""Coevolution experiment: minimal criterion coevolution of pieces and listeners
(Brant & Stanley 2017, 2020; MODES, Dolson et al. 2019).

Generators are pieces (a looped melody in Hz and a stretched-partial timbre, rendered by
the oscillator bank); listeners are PC listeners that learn from the pieces they like,
so their tastes drift (pcmusic.creative.coevolve). Three runs from the same seeds: with
the resource limit R, without it, and with an MC that always passes. Every
`snapshot_every` batches: the MC pass rates since the last snapshot, the generator
population's types (pitches rounded to semitones, stretch to 0.01) for MODES
change/novelty/ecology/complexity and the archive, the number of genres (components
of the like-graph), the fraction of pieces some listener likes, and (main run) WAVs of
sampled survivors. The main and no-limit runs are vmapped together (the limit is a
traced integer), and every population is a plain array with a leading axis.

    python experiments/coevolve.py [--config configs/coevolve.toml] [--out runs/coevolve]
                                    [--quick] [--force] [--set key=value ...]

Writes results.json, coevolve_metrics.png and survivors/*.wav.
"""
from __future__ import annotations

import dataclasses
import functools
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
from pcmusic.creative import listener as lis
from pcmusic.creative import mcc, modes

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "coevolve.toml"
QUICK = ["n_batches=60", "snapshot_every=10", "gen_capacity=32", "lis_capacity=8",
         "n_gen_seeds=8", "n_lis_seeds=6", "n_develop=60", "n_audio=1"]
NO_LIMIT = 2 ** 30  # a lifetime resource no listener reaches


@dataclasses.dataclass(frozen=True)
class CoevolveExperiment:
    seed: int = 0
    n_batches: int = 300
    snapshot_every: int = 20
    gen_capacity: int = 64
    lis_capacity: int = 16
    n_gen_seeds: int = 16
    n_lis_seeds: int = 8
    n_gen_children: int = 8
    n_lis_children: int = 2
    resource_limit: int = 2
    n_develop: int = 100
    develop_pieces: int = 16
    n_pool: int = 128
    band_width: tuple[float, float] = (0.05, 0.15)
    persistence: int = 2
    n_audio: int = 2
    listener: lis.ListenerSpec = dataclasses.field(
        default_factory=lambda: lis.ListenerSpec(n_context=8))
    space: co.PieceSpace = dataclasses.field(default_factory=co.PieceSpace)
    taste: co.Taste = dataclasses.field(default_factory=co.Taste)

    def __post_init__(self):
        require(self.n_batches % self.snapshot_every == 0, "snapshot_every",
                f"must divide n_batches={self.n_batches}")
        require(0 < self.n_gen_seeds <= self.gen_capacity, "n_gen_seeds", "must be in 1..gen_capacity")
        require(0 < self.n_lis_seeds <= self.lis_capacity, "n_lis_seeds", "must be in 1..lis_capacity")
        require(self.resource_limit >= 1, "resource_limit", "must be >= 1")
        require(0 < self.band_width[0] <= self.band_width[1] < 1, "band_width",
                "quantile widths must satisfy 0 < low <= high < 1")


def compiled(cfg: CoevolveExperiment) -> dict:
    kw = dict(space=cfg.space, spec=cfg.listener, taste=cfg.taste,
              n_gen_children=cfg.n_gen_children, n_lis_children=cfg.n_lis_children)

    def chunk(state, key, limit, *, always):
        def body(s, k):
            s, info = co.coevolution_step(s, k, resource_limit=limit, mc_always_true=always, **kw)
            return s, (info.generator_passed, info.listener_passed)
        return jax.lax.scan(body, state, jax.random.split(key, cfg.snapshot_every))

    likes = functools.partial(co.like_matrix, spec=cfg.listener, taste=cfg.taste)
    return {
        # main and no-limit runs: one program, a leading run axis, the limit traced
        "limited": jax.jit(jax.vmap(functools.partial(chunk, always=False), in_axes=(0, None, 0))),
        "always": jax.jit(functools.partial(chunk, always=True, limit=None)),
        "likes": jax.jit(jax.vmap(likes)),
        "render": jax.jit(lambda piece: co.render_piece(piece, space=cfg.space, hop=cfg.listener.hop,
                                                        sample_rate=cfg.listener.sample_rate)),
        "develop": jax.jit(lambda p, k: co.develop_on_pieces(
            p, k, space=cfg.space, spec=cfg.listener, n_batches=cfg.n_develop,
            n_pieces=cfg.develop_pieces)),
    }


def _snapshot(state_np, likes: np.ndarray, passes) -> dict:
    gen, lis_q = state_np.generators, state_np.listeners
    valid = np.asarray(gen.valid)
    pieces = jax.tree.map(lambda x: np.asarray(x)[valid], gen.genomes["piece"])
    types = [co.piece_type(jax.tree.map(lambda x: x[i], pieces)) for i in range(int(valid.sum()))]
    lis_valid = np.asarray(lis_q.valid)
    liked = (likes & lis_valid[None, :]).any(axis=1)[valid]
    return {"types": types,
            "generator_pass_rate": float(np.mean(passes[0])),
            "listener_pass_rate": float(np.mean(passes[1])),
            "genres": co.genres(likes, generator_valid=valid, listener_valid=lis_q.valid),
            "liked_fraction": float(liked.mean()),
            # share of (piece, listener) pairs that are likes: how selective listeners are
            "like_density": float(likes[valid][:, lis_valid].mean()),
            "mean_band": np.asarray(lis_q.genomes["band"])[np.asarray(lis_q.valid)].mean(0).tolist(),
            "n_notes_mean": float(np.mean(pieces.n_notes))}


def _modes(snapshots: list[dict], persistence: int) -> dict:
    history = [s["types"] for s in snapshots]
    return {"change": modes.change(history, persistence=persistence).tolist(),
            "novelty": modes.novelty(history, persistence=persistence).tolist(),
            "ecology": modes.ecology(history, persistence=persistence).tolist(),
            "complexity": modes.complexity(history, co.type_interval_entropy,
                                           persistence=persistence).tolist(),
            "archive": modes.archive_growth(history, persistence=persistence).tolist(),
            # without the persistence filter: raw turnover of types between snapshots
            "raw_change": modes.change(history, persistence=1).tolist(),
            "raw_novelty": modes.novelty(history, persistence=1).tolist()}


def _save_survivors(cfg, fns, state_np, key, snapshot: int, out_dir: Path) -> list[str]:
    gen = state_np.generators
    slots = np.flatnonzero(np.asarray(gen.valid))
    pick = np.asarray(jax.random.choice(key, slots, (min(cfg.n_audio, len(slots)),), replace=False))
    names = []
    for i in pick:
        piece = jax.tree.map(lambda x: jnp.asarray(x)[i], gen.genomes["piece"])
        audio = fns["render"](piece)
        name = f"survivors/snapshot{snapshot:03d}_slot{int(i):03d}.wav"
        audio_io.save(out_dir / name, np.asarray(audio), cfg.listener.sample_rate, overwrite=True)
        names.append(name)
    return names


def run(cfg: CoevolveExperiment, out_dir: Path) -> dict:
    t0 = time.perf_counter()
    (out_dir / "survivors").mkdir(parents=True, exist_ok=True)
    fns = compiled(cfg)
    k_init, k_dev, k_seed, k_run, k_audio = jax.random.split(jax.random.key(cfg.seed), 5)
    base = fns["develop"](lis.init_listener(cfg.listener, key=k_init), k_dev)
    gens, liss = co.seed_populations(base, k_seed, space=cfg.space, spec=cfg.listener,
                                     taste=cfg.taste, n_generators=cfg.n_gen_seeds,
                                     n_listeners=cfg.n_lis_seeds, n_pool=cfg.n_pool,
                                     band_width=cfg.band_width)
    start = mcc.MCCState(mcc.queue_init(gens, capacity=cfg.gen_capacity),
                         mcc.queue_init(liss, capacity=cfg.lis_capacity))
    names = ["resource_limit", "no_resource_limit", "mc_always_true"]
    limited = jax.tree.map(lambda x: jnp.stack([x, x]), start)
    limits = jnp.asarray([cfg.resource_limit, NO_LIMIT], jnp.int32)
    always = start
    snaps = {n: [] for n in names}
    wavs = []
    for i in range(cfg.n_batches // cfg.snapshot_every):
        key = jax.random.fold_in(k_run, i)   # the same mutation keys for every run
        limited, passes_l = fns["limited"](limited, key, limits)
        always, passes_a = fns["always"](always, key)
        states = [jax.tree.map(lambda x: np.asarray(x[r]), limited) for r in range(2)]
        states.append(jax.tree.map(np.asarray, always))
        passes = [jax.tree.map(lambda x: np.asarray(x[r]), passes_l) for r in range(2)]
        passes.append(jax.tree.map(np.asarray, passes_a))
        stacked = jax.tree.map(lambda *x: jnp.stack(x), *[(s.generators.genomes, s.listeners.genomes)
                                                          for s in states])
        likes = np.asarray(fns["likes"](*stacked))
        for name, st, lk, ps in zip(names, states, likes, passes):
            snaps[name].append(_snapshot(st, lk, ps))
        wavs += _save_survivors(cfg, fns, states[0], jax.random.fold_in(k_audio, i), i, out_dir)
    runs = {}
    for name in names:
        m = _modes(snaps[name], cfg.persistence)
        half = len(snaps[name]) // 2
        gen_rates = [s["generator_pass_rate"] for s in snaps[name]]
        runs[name] = {
            "snapshots": [{k: v for k, v in s.items() if k != "types"} | {
                "batch": (j + 1) * cfg.snapshot_every, "n_types": len(set(s["types"])),
                **{key: m[key][j] for key in m}} for j, s in enumerate(snaps[name])],
            "generator_pass_rate": float(np.mean(gen_rates)),
            "listener_pass_rate": float(np.mean([s["listener_pass_rate"] for s in snaps[name]])),
            "mean_ecology_second_half": float(np.mean(m["ecology"][half:])),
            "mean_change_second_half": float(np.mean(m["change"][half:])),
            "mean_raw_change_second_half": float(np.mean(m["raw_change"][half:])),
            "final_archive": int(m["archive"][-1]),
            "mean_genres_second_half": float(np.mean([s["genres"] for s in snaps[name][half:]])),
            "mean_liked_fraction_second_half": float(np.mean(
                [s["liked_fraction"] for s in snaps[name][half:]])),
            "mean_like_density_second_half": float(np.mean(
                [s["like_density"] for s in snaps[name][half:]])),
        }
    main = runs["resource_limit"]
    results = {
        "config": config_to_dict(cfg), "runs": runs, "survivor_wavs": wavs,
        "checks": {
            "pass_rate_strictly_inside_0.02_0.98":
                0.02 < main["generator_pass_rate"] < 0.98 and 0.02 < main["listener_pass_rate"] < 0.98,
            "resource_limit_raises_ecology":
                main["mean_ecology_second_half"] > runs["no_resource_limit"]["mean_ecology_second_half"],
            "mc_always_true_changes_more":
                runs["mc_always_true"]["mean_raw_change_second_half"]
                > main["mean_raw_change_second_half"],
            "mc_always_true_lower_ecology":
                runs["mc_always_true"]["mean_ecology_second_half"] < main["mean_ecology_second_half"]},
        "figures": plot(cfg, runs, out_dir), "seconds": time.perf_counter() - t0}
    outputs.write_atomic(out_dir / "results.json", json.dumps(results, indent=1))
    return results


def plot(cfg: CoevolveExperiment, runs: dict, out_dir: Path) -> list[str]:
    keys = [("generator_pass_rate", "generator MC pass rate"), ("ecology", "ecology (bits)"),
            ("change", "change (persistent types)"), ("raw_change", "change (all types)"), ("archive", "archive size"), ("genres", "genres"),
            ("like_density", "like density (piece, listener)"), ("complexity", "complexity (bits)")]
    fig = Figure(figsize=(14, 5.5))
    axes = fig.subplots(2, 4, sharex=True)
    for ax, (key, label) in zip(axes.ravel(), keys):
        for name, r in runs.items():
            ax.plot([s["batch"] for s in r["snapshots"]], [s[key] for s in r["snapshots"]],
                    ".-", label=name.replace("_", " "))
        ax.set_title(label, fontsize=9)
    axes[0, 0].legend(fontsize=7)
    for ax in axes[1]:
        ax.set_xlabel("batch")
    fig.tight_layout()
    fig.savefig(out_dir / "coevolve_metrics.png", dpi=120)
    return ["coevolve_metrics.png"]


def summary(results: dict) -> str:
    lines = [f"{name}: pass gen {r['generator_pass_rate']:.2f} lis {r['listener_pass_rate']:.2f}, "
             f"ecology {r['mean_ecology_second_half']:.2f}, change {r['mean_change_second_half']:.1f} "
             f"(raw {r['mean_raw_change_second_half']:.1f}), "
             f"archive {r['final_archive']}, genres {r['mean_genres_second_half']:.1f}, liked "
             f"{r['mean_liked_fraction_second_half']:.2f}, like density "
             f"{r['mean_like_density_second_half']:.2f}" for name, r in results["runs"].items()]
    lines.append("checks: " + ", ".join(f"{k}={v}" for k, v in results["checks"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    return experiment.main(argv, description=__doc__.split("\n\n")[0], schema=CoevolveExperiment,
                           default_config=DEFAULT_CONFIG, default_out="runs/coevolve", quick=QUICK,
                           run=run, summary=summary, set_example="resource_limit=3")


if __name__ == "__main__":
    experiment.entry(main)
