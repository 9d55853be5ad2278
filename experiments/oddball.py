"""Oddball experiment: a PC listener's mismatch response (Lieder et al. 2013).

A listener (pcmusic.creative.listener) hears pure-tone streams online, learning after
every tone: a standard (1000 Hz) with rare deviants, the first tones standard and never
two deviants in a row. Its surprise (settled free energy per frame) is averaged over
each tone's response window. Reported per seed: deviant / standard error ratio with a
permutation-test p; the ratio for several frequency gaps and deviant probabilities
(every stream heard by the same fresh listener); then, continuing from the listener
that heard the main stream, the error over repetitions of a new standard and the error
in the window of an omitted tone against the silent baseline (the slots' silent frames).

    python experiments/oddball.py [--config configs/oddball.toml] [--out runs/oddball]
                                   [--quick] [--force] [--set key=value ...]

Writes results.json, oddball_traces.png, oddball_ratios.png, oddball_adaptation.png.
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

from pcmusic import experiment, outputs
from pcmusic.configio import config_to_dict, require
from pcmusic.creative import listener as lis
from pcmusic.creative import oddball as odd

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "oddball.toml"
QUICK = ["seeds=[0]", "n_permutations=2000"]  # same streams and listener, one seed: CI's smoke run


@dataclasses.dataclass(frozen=True)
class OddballExperiment:
    seeds: tuple[int, ...] = (0, 1, 2)
    n_tones: int = 400
    n_initial: int = 10
    standard_hz: float = 1000.0
    gap: float = 0.1
    p_deviant: float = 0.1
    gaps: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2)
    probabilities: tuple[float, ...] = (0.05, 0.2)
    tone_frames: int = 6
    soa_frames: int = 15
    lead_frames: int = 2
    amplitude: float = 0.3
    n_learn: int = 2
    new_standard_hz: float = 1250.0
    n_repetitions: int = 40
    n_omission_tones: int = 200
    p_omission: float = 0.1
    n_permutations: int = 10000
    permutation_seed: int = 12345
    listener: lis.ListenerSpec = dataclasses.field(
        default_factory=lambda: lis.ListenerSpec(n_context=24))

    def __post_init__(self):
        require(self.n_tones >= 400, "n_tones", f"the paradigm needs >= 400 tones, got {self.n_tones}")
        require(len(self.seeds) >= 1, "seeds", "give at least one seed")
        require(self.gap in self.gaps, "gap", f"the main gap {self.gap} must be one of gaps {self.gaps}")
        require(all(0 < p < 0.5 for p in self.probabilities + (self.p_deviant, self.p_omission)),
                "probabilities", "probabilities must lie in (0, 0.5)")
        window_ms = 1000 * self.tone_frames / self.listener.frame_rate_hz
        require(50 <= window_ms <= 100, "tone_frames", f"tones must last 50-100 ms, got {window_ms} ms")
        half_window = self.listener.n_fft / 2 / self.listener.hop
        require(self.lead_frames >= half_window, "lead_frames",
                f"must cover the STFT's half window ({half_window:.1f} frames)")


def _conditions(cfg: OddballExperiment) -> list[tuple[float, float]]:
    """(p_deviant, gap) per stream: the gap sweep at p_deviant, then the probability sweep."""
    return [(cfg.p_deviant, g) for g in cfg.gaps] + [(p, cfg.gap) for p in cfg.probabilities]


def _render(cfg: OddballExperiment, freqs_hz, present):
    spec = cfg.listener
    audio = odd.render_stream(freqs_hz, present, sample_rate=spec.sample_rate, hop=spec.hop,
                              soa_frames=cfg.soa_frames, tone_frames=cfg.tone_frames,
                              lead_frames=cfg.lead_frames, amplitude=cfg.amplitude)
    return lis.hear(audio, spec=spec)


def run_seed(cfg: OddballExperiment, seed: int, fns) -> dict:
    """Every stream of one seed; `fns` holds the compiled listeners (shared across seeds)."""
    k_listener, k_seq, k_omit = jax.random.split(jax.random.key(seed), 3)
    params = lis.init_listener(cfg.listener, key=k_listener)
    conds = _conditions(cfg)
    # One sequence per probability: the gap sweep's streams share deviant positions.
    seqs = {p: odd.rare_events(jax.random.fold_in(k_seq, i), n_tones=cfg.n_tones, probability=p,
                               n_initial=cfg.n_initial)
            for i, p in enumerate(sorted({p for p, _ in conds}))}
    deviants = jnp.stack([seqs[p] for p, _ in conds])
    freqs = jnp.where(deviants, jnp.float32(cfg.standard_hz) * (1.0 + jnp.asarray(
        [g for _, g in conds], jnp.float32))[:, None], jnp.float32(cfg.standard_hz))
    # One compiled listener for every stream (a vmapped one would compile a second time).
    heard = [fns["listen"](params, _render(cfg, f, jnp.ones(cfg.n_tones, bool))) for f in freqs]
    after = [h[0] for h in heard]
    per_frame = jnp.stack([h[1] for h in heard])           # [n_conditions, n_frames]

    window = 2 * cfg.lead_frames + cfg.tone_frames
    errors = odd.slot_means(per_frame, soa_frames=cfg.soa_frames, start=0, stop=window)
    valid = jnp.arange(cfg.n_tones) >= cfg.n_initial
    perm_key = jax.random.key(cfg.permutation_seed)
    stats = []
    for (p, g), e, d in zip(conds, errors, deviants):
        ratio, pval = fns["perm"](e, d, perm_key, valid)
        stats.append({"p_deviant": p, "gap": g, "n_deviants": int(d.sum()),
                      "deviant_error": float(jnp.mean(e[d])),
                      "standard_error": float(jnp.mean(e[~d & valid])),
                      "ratio": float(ratio), "p_value": float(pval)})

    # Continue from the listener that heard the main stream.
    main = conds.index((cfg.p_deviant, cfg.gap))
    heard = after[main]
    new = _render(cfg, jnp.full(cfg.n_repetitions, cfg.new_standard_hz, jnp.float32),
                  jnp.ones(cfg.n_repetitions, bool))
    _, per_frame_new = fns["listen"](heard, new)
    rep_err = np.asarray(odd.slot_means(per_frame_new, soa_frames=cfg.soa_frames, start=0,
                                        stop=window))
    omitted = odd.rare_events(k_omit, n_tones=cfg.n_omission_tones, probability=cfg.p_omission,
                              n_initial=cfg.n_initial)
    om_frames = _render(cfg, jnp.full(cfg.n_omission_tones, cfg.standard_hz, jnp.float32), ~omitted)
    _, per_frame_om = fns["listen"](heard, om_frames)
    om_win = odd.slot_means(per_frame_om, soa_frames=cfg.soa_frames, start=0, stop=window)
    om_base = odd.slot_means(per_frame_om, soa_frames=cfg.soa_frames, start=window,
                             stop=cfg.soa_frames)
    valid_om = jnp.arange(cfg.n_omission_tones) >= cfg.n_initial
    # Omission windows against the silent baselines of the tones that were played.
    values = jnp.concatenate([om_win, om_base])
    labels = jnp.concatenate([omitted, jnp.zeros_like(omitted)])
    keep = jnp.concatenate([omitted & valid_om, ~omitted & valid_om])
    om_ratio, om_p = fns["perm"](values, labels, perm_key, keep)
    n_half = max(1, len(rep_err) // 4)
    rho = float(np.corrcoef(np.argsort(np.argsort(rep_err)), np.arange(len(rep_err)))[0, 1])
    return {
        "seed": seed,
        "streams": stats,
        "new_standard": {"hz": cfg.new_standard_hz, "errors": rep_err.tolist(),
                         "first_quarter_mean": float(rep_err[:n_half].mean()),
                         "last_quarter_mean": float(rep_err[-n_half:].mean()),
                         "spearman_rho_vs_repetition": rho},
        "omission": {"n_omitted": int(jnp.sum(omitted & valid_om)),
                     "omitted_window_error": float(jnp.mean(om_win[omitted & valid_om])),
                     "silent_baseline_error": float(jnp.mean(om_base[~omitted & valid_om])),
                     "played_tone_error": float(jnp.mean(om_win[~omitted & valid_om])),
                     "ratio": float(om_ratio), "p_value": float(om_p)},
        "_traces": {"per_frame": np.asarray(per_frame[main]), "deviants": np.asarray(deviants[main]),
                    "omission_per_frame": np.asarray(per_frame_om), "omitted": np.asarray(omitted)},
    }


def _checks(cfg: OddballExperiment, seed: dict) -> dict:
    by = {(s["p_deviant"], s["gap"]): s for s in seed["streams"]}
    main = by[(cfg.p_deviant, cfg.gap)]
    gap_ratios = [by[(cfg.p_deviant, g)]["ratio"] for g in sorted(cfg.gaps)]
    probs = sorted(cfg.probabilities)
    return {
        "deviant_ratio_above_1": main["ratio"] > 1 and main["p_value"] < 0.01,
        "ratio_non_decreasing_with_gap": bool(np.all(np.diff(gap_ratios) >= 0)),
        "rarer_deviants_larger_ratio": by[(probs[0], cfg.gap)]["ratio"] > by[(probs[-1], cfg.gap)]["ratio"],
        "new_standard_error_falls": seed["new_standard"]["last_quarter_mean"]
        < seed["new_standard"]["first_quarter_mean"],
        "omission_above_silence": seed["omission"]["omitted_window_error"]
        > seed["omission"]["silent_baseline_error"] and seed["omission"]["p_value"] < 0.01,
    }


def plot(cfg: OddballExperiment, seeds: list[dict], out_dir: Path) -> list[str]:
    ms = 1000.0 / cfg.listener.frame_rate_hz
    t = (np.arange(-cfg.soa_frames, 2 * cfg.soa_frames) - cfg.lead_frames) * ms
    valid = np.arange(cfg.n_tones) >= cfg.n_initial + 1

    def around(per_frame, mask):
        slots = per_frame.reshape(-1, cfg.soa_frames)
        idx = np.flatnonzero(mask & valid[:len(mask)])
        idx = idx[idx + 1 < len(slots)]
        return np.stack([slots[i - 1:i + 2].ravel() for i in idx]).mean(0)

    dev = np.mean([around(s["_traces"]["per_frame"], s["_traces"]["deviants"]) for s in seeds], 0)
    std = np.mean([around(s["_traces"]["per_frame"], ~s["_traces"]["deviants"]) for s in seeds], 0)
    omi = np.mean([around(s["_traces"]["omission_per_frame"], s["_traces"]["omitted"]) for s in seeds], 0)
    fig = Figure(figsize=(8, 3.6))
    ax = fig.subplots()
    ax.plot(t, std, label="after standard onset", color="tab:blue")
    ax.plot(t, dev, label=f"after deviant onset (+{100 * cfg.gap:g}%)", color="tab:red")
    ax.plot(t, dev - std, label="difference (MMN-like)", color="k", lw=2)
    ax.plot(t, omi, label="omitted tone", color="tab:green", ls="--")
    ax.axvspan(0, cfg.tone_frames * ms, color="0.9", zorder=0)
    ax.set_xlabel("time from tone onset (ms)")
    ax.set_ylabel("free energy per frame (nats)")
    ax.set_title(f"Listener surprise around onsets (mean over seeds {list(cfg.seeds)})", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "oddball_traces.png", dpi=120)

    fig = Figure(figsize=(8, 3.2))
    axes = fig.subplots(1, 2)
    for s in seeds:
        by = {(x["p_deviant"], x["gap"]): x["ratio"] for x in s["streams"]}
        gaps = sorted(cfg.gaps)
        axes[0].plot([100 * g for g in gaps], [by[(cfg.p_deviant, g)] for g in gaps], "o-",
                     label=f"seed {s['seed']}")
        probs = sorted(set(cfg.probabilities) | {cfg.p_deviant})
        axes[1].plot(probs, [by[(p, cfg.gap)] for p in probs], "o-", label=f"seed {s['seed']}")
    axes[0].set_xlabel("deviant frequency gap (%)")
    axes[0].set_ylabel("deviant / standard error")
    axes[1].set_xlabel("deviant probability")
    for ax in axes:
        ax.axhline(1.0, color="0.6", lw=0.8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "oddball_ratios.png", dpi=120)

    fig = Figure(figsize=(5, 3.2))
    ax = fig.subplots()
    for s in seeds:
        ax.plot(np.arange(1, cfg.n_repetitions + 1), s["new_standard"]["errors"], ".-",
                label=f"seed {s['seed']}")
    ax.set_xlabel(f"repetition of the new standard ({cfg.new_standard_hz:g} Hz)")
    ax.set_ylabel("error in the tone window")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "oddball_adaptation.png", dpi=120)
    return ["oddball_traces.png", "oddball_ratios.png", "oddball_adaptation.png"]


def compiled(cfg: OddballExperiment) -> dict:
    spec = cfg.listener

    def listen(params, frames):
        return lis.listen(params, frames, spec=spec, chunk=cfg.soa_frames, n_learn=cfg.n_learn)

    def perm(values, labels, key, valid):
        return odd.permutation_test(values, labels, key=key, n_permutations=cfg.n_permutations,
                                    valid=valid)

    return {"listen": jax.jit(listen), "perm": jax.jit(perm)}


def run(cfg: OddballExperiment, out_dir: Path) -> dict:
    t0 = time.perf_counter()
    fns = compiled(cfg)
    seeds = [run_seed(cfg, s, fns) for s in cfg.seeds]
    for s in seeds:
        s["checks"] = _checks(cfg, s)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = plot(cfg, seeds, out_dir)
    for s in seeds:
        del s["_traces"]
    checks = {name: all(s["checks"][name] for s in seeds) for name in seeds[0]["checks"]}
    results = {"config": config_to_dict(cfg), "seeds": seeds, "holds_for_all_seeds": checks,
               "figures": figures, "seconds": time.perf_counter() - t0}
    outputs.write_atomic(out_dir / "results.json", json.dumps(results, indent=1))
    return results


def summary(results: dict) -> str:
    lines = []
    for s in results["seeds"]:
        streams = ", ".join(f"p={x['p_deviant']:g} gap={100 * x['gap']:g}%: {x['ratio']:.2f} "
                            f"(p={x['p_value']:.1e})" for x in s["streams"])
        om, ns = s["omission"], s["new_standard"]
        lines.append(f"seed {s['seed']}: ratios {streams}; new standard error "
                     f"{ns['first_quarter_mean']:.3g} -> {ns['last_quarter_mean']:.3g}; omission "
                     f"{om['omitted_window_error']:.3g} vs silence {om['silent_baseline_error']:.3g}")
    lines.append("holds for all seeds: " + ", ".join(f"{k}={v}" for k, v in
                                                    results["holds_for_all_seeds"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    return experiment.main(argv, description=__doc__.split("\n\n")[0], schema=OddballExperiment,
                           default_config=DEFAULT_CONFIG, default_out="runs/oddball", quick=QUICK,
                           run=run, summary=summary, set_example="seeds=[0,1]")


if __name__ == "__main__":
    experiment.entry(main)
