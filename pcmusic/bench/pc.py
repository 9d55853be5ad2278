"""Benchmark of the PC engine: train steps per second on two MLP hierarchies.

Workload (the same in experiments/compare_pc_libraries.py): a discriminative PC net with
widths input -> ... -> labels, tanh hidden maps and a linear label map, squared-error
energies (unit precisions, no prior), input and one-hot labels clamped. One train step
= feed-forward initialisation of the hidden levels, T = 20 inference steps of SGD
(lr 0.1) on the hidden latents, then one Adam step (lr 1e-3) on the weights, all in one
jit. The anchors' "bottom" (the input, source of the predictions) is pcmusic's top level,
since pcmusic's maps predict downwards: level 0 = labels, level L = input.

Needed matmul work per train step, for a net with L maps (widths n_0 = input, ..., n_L =
labels in the anchors' order) and batch B, counting a [B, a] x [a, b] product as 2 B a b:
- feed-forward initialisation: every map but the last (L - 1 products; the input's
  prediction is shared with inference, where it is constant);
- each inference step: the forward of every map but the input's (constant) and the
  backward to every free level: 2 (L - 1) products, the input-side map excluded;
- learning: the forward at the settled state (L - 1 products) and L weight gradients.
For 4096 x 4 and T = 20: 2 + 80 + 2 + 3 = 87 products of 2 B 4096^2 FLOPs each.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import jax
import jax.numpy as jnp
import optax

from pcmusic import pc
from pcmusic.bench.table import machine_description, time_call

SMALL = (784, 512, 512, 10)
WIDE = (4096, 4096, 4096, 4096)
N_INFERENCE_STEPS = 20
LATENT_LR = 0.1
PARAM_LR = 1e-3


def build(widths: Sequence[int], batch: int, *, bf16: bool = False, seed: int = 0,
          n_steps: int = N_INFERENCE_STEPS, check_every: int = 1):
    """(jitted step(params, opt_state, x, y) -> (params, opt_state, energy), params, opt_state, x, y).

    widths: input first, labels last (the anchors' order). x f32[batch, widths[0]] uniform
    in [0, 1); y one-hot f32[batch, widths[-1]].
    """
    sizes = tuple(widths)[::-1]  # pcmusic level order: labels (level 0) ... input (level L)
    n_maps = len(sizes) - 1
    maps = tuple(pc.maps.dense(sizes[l + 1], sizes[l], activation=jnp.tanh if l > 0 else None,
                               bf16=bf16) for l in range(n_maps))
    hierarchy = pc.Hierarchy(maps=maps, top_prior=False)
    k_maps, k_x, k_y = jax.random.split(jax.random.PRNGKey(seed), 3)
    map_params = [m.init(k) for m, k in zip(maps, jax.random.split(k_maps, n_maps))]
    x = jax.random.uniform(k_x, (batch, sizes[-1]), jnp.float32)
    y = jax.nn.one_hot(jax.random.randint(k_y, (batch,), 0, sizes[0]), sizes[0], dtype=jnp.float32)
    example = [jnp.zeros((batch, n), jnp.float32) for n in sizes]
    params = pc.init_params(hierarchy, map_params, example)
    optimizer = pc.freeze_except(optax.adam(PARAM_LR))  # the weights (maps) only
    clamp = pc.clamp_levels(len(sizes), [0, n_maps])

    def step(params, opt_state, x, y):
        latents = pc.replace_levels(pc.predict_top_down(hierarchy, params, x), {0: y})
        params, opt_state, result = pc.train_step(
            hierarchy, params, opt_state, latents, latent_optimizer=optax.sgd(LATENT_LR),
            param_optimizer=optimizer, n_steps=n_steps, clamp=clamp, check_every=check_every)
        return params, opt_state, result.energy / jnp.float32(batch)

    return jax.jit(step), params, optimizer.init(params), x, y


def needed_flops(widths: Sequence[int], batch: int, n_steps: int = N_INFERENCE_STEPS) -> float:
    """Matmul FLOPs that a train step must do (module docstring), widths input first."""
    products = [2.0 * batch * a * b for a, b in zip(widths[:-1], widths[1:])]
    after_input = sum(products[1:])  # maps whose input is a free level
    return sum(products[:-1]) + n_steps * 2 * after_input + after_input + sum(products)


def matmul_rate(batch: int, n: int, *, bf16: bool = False, n_products: int = 16,
                n_repeats: int = 5) -> float:
    """Achieved FLOP/s of [batch, n] x [n, n] products (the roofline for the net).

    `n_products` chained products in one jit, as in the net's step, so that dispatch and
    synchronisation are amortised; the fastest of `n_repeats` calls, so that load on a
    shared machine lowers the ceiling as little as possible (the fraction reported against
    it is then a floor).
    """
    key_a, key_b = jax.random.split(jax.random.PRNGKey(1))
    dtype = jnp.bfloat16 if bf16 else jnp.float32
    a = jax.random.normal(key_a, (batch, n), jnp.float32)
    b = (jax.random.normal(key_b, (n, n), jnp.float32) / jnp.sqrt(jnp.float32(n))).astype(dtype)

    @jax.jit
    def chain(x, b):
        for _ in range(n_products):  # each product needs the last: nothing to share
            x = jnp.matmul(x.astype(dtype), b, preferred_element_type=jnp.float32)
        return x

    best = min(time_call(lambda: chain(a, b), n_repeats=1) for _ in range(n_repeats))
    return n_products * 2.0 * batch * n * n / best


def final_energy(widths: Sequence[int], batch: int, *, bf16: bool, n_train: int) -> float:
    """Settled energy per sample in the `n_train`-th train step on one fixed batch.

    Same init and data in both matmul modes, so the two figures differ only by precision.
    """
    step, params, opt_state, x, y = build(widths, batch, bf16=bf16)
    energy = jnp.float32(jnp.nan)
    for _ in range(n_train):
        params, opt_state, energy = step(params, opt_state, x, y)
    return float(energy)


def time_net(name: str, widths: Sequence[int], batch: int, *, bf16: bool, n_repeats: int,
             n_train: int, note: str = "", check_every: int = 1, steps_per_call: int = 1) -> dict:
    """One table row. `steps_per_call` > 1 runs that many train steps in one jit
    (`lax.scan`), so the figure leaves out the per-call dispatch from Python."""
    step, params, opt_state, x, y = build(widths, batch, bf16=bf16, check_every=check_every)
    if steps_per_call > 1:
        def run_steps(params, opt_state, x, y):
            def body(carry, _):
                return step(*carry, x, y)[:2], None
            return jax.lax.scan(body, (params, opt_state), None, length=steps_per_call)[0]
        call = jax.jit(run_steps)
    else:
        call = step
    seconds = time_call(lambda: call(params, opt_state, x, y), n_repeats=n_repeats) / steps_per_call
    flops = needed_flops(widths, batch)
    return {"net": name, "batch": batch, "matmuls": "bf16" if bf16 else "default",
            "check_every": check_every, "steps/call": steps_per_call,
            "ms/step": seconds * 1e3, "steps/s": 1.0 / seconds, "GFLOP/s": flops / seconds / 1e9,
            "final E/sample": final_energy(widths, batch, bf16=bf16, n_train=n_train), "note": note}


def run(*, quick: bool) -> Iterator[tuple[str, list[dict]]]:
    """Benchmark tables, each yielded when done: small net (f32 and opt-in bf16), wide net
    with roofline fraction."""
    n_repeats = 3 if quick else 7
    n_train = 5 if quick else 20
    rows = [time_net("784-512-512-10", SMALL, 256, bf16=bf16, n_repeats=n_repeats,
                     n_train=n_train) for bf16 in (False, True)]
    speedup = rows[0]["ms/step"] / rows[1]["ms/step"]
    e32, e16 = rows[0]["final E/sample"], rows[1]["final E/sample"]
    rows[1]["note"] = f"{speedup:.2f}x vs default, final E {100 * (e16 - e32) / abs(e32):+.2f}%"
    # The energy checks (divergence, history) read every error once more per step; with
    # check_every = T they happen at the first step and the end only, like the anchors.
    light = time_net("784-512-512-10", SMALL, 256, bf16=False, n_repeats=n_repeats, n_train=n_train,
                     check_every=N_INFERENCE_STEPS)
    light["note"] = f"{rows[0]['ms/step'] / light['ms/step']:.2f}x vs checking every step"
    rows.append(light)
    looped = time_net("784-512-512-10", SMALL, 256, bf16=False, n_repeats=n_repeats,
                      n_train=n_train, check_every=N_INFERENCE_STEPS, steps_per_call=10)
    looped["note"] = f"{light['ms/step'] / looped['ms/step']:.2f}x vs one step per call"
    rows.append(looped)
    yield (f"PC train step, small net (T={N_INFERENCE_STEPS} SGD steps + 1 Adam step); "
           f"{machine_description()}", rows)
    if quick:
        return
    on_cpu = jax.default_backend() == "cpu"
    batch = 256 if on_cpu else 4096
    note = "batch cut from 4096 to 256 on CPU" if on_cpu else ""
    wide, ceilings = [], {}
    # check_every = T checks the energy once per T steps: the inference loop becomes one
    # unrolled block, which XLA fuses across steps (and the checks' extra reads go).
    for check_every in (1, N_INFERENCE_STEPS):
        pair = []
        for bf16 in (False, True):
            # Adam at lr 1e-3 destabilises a 4096-wide net within a few steps, so the
            # energies compare one train step from the same start.
            row = time_net("4096x4", WIDE, batch, bf16=bf16, n_repeats=3, n_train=1, note=note,
                           check_every=check_every)
            if bf16 not in ceilings:
                ceilings[bf16] = matmul_rate(batch, WIDE[0], bf16=bf16, n_repeats=5)
            row["ceiling GFLOP/s"] = ceilings[bf16] / 1e9
            row["roofline %"] = 100.0 * row["GFLOP/s"] * 1e9 / ceilings[bf16]
            pair.append(row)
        e32, e16 = pair[0]["final E/sample"], pair[1]["final E/sample"]
        pair[1]["note"] = (note + "; " if note else "") + (
            f"{pair[0]['ms/step'] / pair[1]['ms/step']:.2f}x vs default, "
            f"final E {100 * (e16 - e32) / abs(e32):+.2f}%")
        wide += pair
    yield (f"PC train step, wide net; needed FLOPs = {needed_flops(WIDE, batch):.3e} per step "
           f"(87 products of 2*B*4096^2); ceiling = fastest of 5 calls of 16 chained "
           f"[B,4096]x[4096,4096] products; "
           f"E after 1 train step", wide)


if __name__ == "__main__":
    import sys

    from pcmusic.bench.table import format_table

    for title, table_rows in run(quick="--quick" in sys.argv):
        print(format_table(title, table_rows))
