"""Generative maps g(params, x) as pure (init, apply) pairs over plain-pytree params.

Each factory returns a `Map` whose `init(key) -> params` builds a dict of float32
arrays and whose `apply(params, x) -> y` is a pure function, so gradients with respect
to both the latents `x` and the params are explicit (`jax.grad` on either argument).
Time-series maps use the layout `[batch, n_frames, n_channels]`.

`bf16=True` is an opt-in fast mode: params stay float32, the matmul/convolution inputs
are cast to bfloat16 and accumulate in float32 (`preferred_element_type`), in the
forward and in both backward products (the cotangent is cast to bfloat16 too). The default
uses JAX's default matmul precision (TF32 on recent NVIDIA GPUs, float32 on CPU).

`from_flax(module, example_input)` makes a flax module (nnx or linen; an equinox module
where equinox is installed) a `Map` of the same kind: its params a plain nested dict of
arrays, its apply pure.
"""
from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from pcmusic.pc.errors import HierarchySpecError

Params = Any


class Map(NamedTuple):
    """A generative map: `init(key) -> params`, `apply(params, x) -> prediction`.

    intermediates: `intermediates(params, x) -> {name: array}`, the map's hidden
    activations at input x (maps made by `from_flax`; None for the others).
    """

    init: Callable[[jax.Array], Params]
    apply: Callable[[Params, jax.Array], jax.Array]
    intermediates: Callable[[Params, jax.Array], dict] | None = None


def _identity(x: jax.Array) -> jax.Array:
    return x


def _bf16_product(op: Callable, dense_2d: bool = False) -> Callable:
    """`op(a, w, out_dtype)`, a bilinear product, as `f(x, w)` (float32 in and out) whose
    forward AND backward products take bfloat16 operands.

    JAX's own transpose of a bf16 x bf16 -> f32 product multiplies the float32 cotangent
    by a bf16 operand, which XLA runs as a float32 (TF32) product: the backward half of
    the work would not speed up. Here the cotangent is cast to bf16 once. `dense_2d`:
    `op` is `x @ w` with w 2-D; its two transposes are written out so that they
    accumulate and return float32; other ops use `jax.vjp` of the bf16-output product.
    """
    bf16 = jnp.bfloat16

    @jax.custom_vjp
    def f(x, w):
        return op(x.astype(bf16), w.astype(bf16), jnp.float32)

    def fwd(x, w):
        xb, wb = x.astype(bf16), w.astype(bf16)
        return op(xb, wb, jnp.float32), (xb, wb)

    def bwd(res, g):
        xb, wb = res
        gb = g.astype(bf16)
        if dense_2d:
            dx = jnp.matmul(gb, wb.T, preferred_element_type=jnp.float32)
            dw = jnp.matmul(xb.reshape(-1, xb.shape[-1]).T, gb.reshape(-1, gb.shape[-1]),
                            preferred_element_type=jnp.float32)
            return dx, dw
        _, vjp = jax.vjp(lambda a, b: op(a, b, bf16), xb, wb)
        dx, dw = vjp(gb)
        return dx.astype(jnp.float32), dw.astype(jnp.float32)

    f.defvjp(fwd, bwd)
    return f


def _matmul(a, w, out_dtype):
    return jnp.matmul(a, w, preferred_element_type=out_dtype)


_matmul_bf16 = _bf16_product(_matmul, dense_2d=True)


def dense(n_in: int, n_out: int, *, activation: Callable | None = None, bias: bool = True,
          bf16: bool = False, scale: float = 1.0) -> Map:
    """Affine map `activation(x @ w + b)`: x `[..., n_in]` -> `[..., n_out]`.

    Weights are drawn N(0, scale^2 / n_in) (LeCun normal), biases start at zero.
    """
    act = activation or _identity

    def init(key: jax.Array) -> Params:
        w = jax.random.normal(key, (n_in, n_out), jnp.float32) * jnp.float32(scale / n_in**0.5)
        return {"w": w, "b": jnp.zeros((n_out,), jnp.float32)} if bias else {"w": w}

    product = _matmul_bf16 if bf16 else functools.partial(_matmul, out_dtype=jnp.float32)

    def apply(params: Params, x: jax.Array) -> jax.Array:
        y = product(x, params["w"])
        if bias:
            y = y + params["b"].reshape((1,) * (y.ndim - 1) + (n_out,))
        return act(y)

    return Map(init, apply)


def conv1d(n_in: int, n_out: int, *, kernel_size: int, activation: Callable | None = None,
           bf16: bool = False, scale: float = 1.0) -> Map:
    """'Same'-padded 1-D convolution in time: x `[batch, n_frames, n_in]` -> `[batch, n_frames, n_out]`."""
    act = activation or _identity

    def init(key: jax.Array) -> Params:
        fan_in = n_in * kernel_size
        w = jax.random.normal(key, (kernel_size, n_in, n_out), jnp.float32)
        return {"w": w * jnp.float32(scale / fan_in**0.5), "b": jnp.zeros((n_out,), jnp.float32)}

    def conv(a, w, out_dtype):
        return lax.conv_general_dilated(a, w, window_strides=(1,), padding="SAME",
                                        dimension_numbers=("NWC", "WIO", "NWC"),
                                        preferred_element_type=out_dtype)

    product = _bf16_product(conv) if bf16 else functools.partial(conv, out_dtype=jnp.float32)

    def apply(params: Params, x: jax.Array) -> jax.Array:
        return act(product(x, params["w"]) + params["b"][None, None, :])

    return Map(init, apply)


def upsample(n_in: int, n_out: int, *, factor: int, kernel_size: int | None = None,
             activation: Callable | None = None, bf16: bool = False, scale: float = 1.0) -> Map:
    """Transposed convolution that raises the frame rate by the integer `factor`.

    x `[batch, n_frames, n_in]` -> `[batch, n_frames * factor, n_out]`. The kernel spans
    `kernel_size` output frames (default `2 * factor`, so neighbouring coarse frames
    overlap and the output is smooth rather than blocky). `params["w"]` has shape
    `[kernel_size, n_in, n_out]`: output frame `t * factor + k - pad` receives
    `x[t] @ w[k]`.
    """
    if factor < 1:
        raise HierarchySpecError(f"upsample factor must be a positive integer, got {factor}")
    k_size = kernel_size or 2 * factor
    act = activation or _identity
    # Output frame j = t*factor + k - pad; this pad centres the kernel so that the
    # output has exactly n_frames * factor frames.
    pad = (k_size - factor) // 2

    def init(key: jax.Array) -> Params:
        w = jax.random.normal(key, (k_size, n_in, n_out), jnp.float32)
        fan_in = n_in * max(1, k_size // factor)
        return {"w": w * jnp.float32(scale / fan_in**0.5), "b": jnp.zeros((n_out,), jnp.float32)}

    def transposed_conv(a, w, out_dtype):
        # A transposed convolution is the input dilated by `factor` then correlated with
        # the flipped kernel; padding k-1-pad on the left keeps frame alignment.
        return lax.conv_general_dilated(a, w[::-1], window_strides=(1,),
                                        padding=[(k_size - 1 - pad, k_size - 1 - pad + factor - 1)],
                                        lhs_dilation=(factor,),
                                        dimension_numbers=("NWC", "WIO", "NWC"),
                                        preferred_element_type=out_dtype)

    product = (_bf16_product(transposed_conv) if bf16
               else functools.partial(transposed_conv, out_dtype=jnp.float32))

    def apply(params: Params, x: jax.Array) -> jax.Array:
        n_frames = x.shape[-2]
        y = product(x, params["w"])[:, : n_frames * factor, :]
        return act(y + params["b"][None, None, :])

    return Map(init, apply)


def pointwise(fn: Callable[[jax.Array], jax.Array]) -> Map:
    """A parameter-free elementwise map (e.g. `jnp.tanh` before a dense: `W tanh(z)`)."""
    return Map(lambda key: {}, lambda params, x: fn(x))


def compose(*maps: Map) -> Map:
    """Apply `maps` in order (first map sees the input); params are a tuple, one per map."""

    def init(key: jax.Array) -> Params:
        keys = jax.random.split(key, len(maps))
        return tuple(m.init(k) for m, k in zip(maps, keys))

    def apply(params: Params, x: jax.Array) -> jax.Array:
        for m, p in zip(maps, params):
            x = m.apply(p, x)
        return x

    return Map(init, apply)


def from_flax(module, example_input: jax.Array | None = None) -> Map:
    """A flax module as a `Map` whose params are a plain nested dict of arrays (str keys,
    a layer list's indices as "0", "1", ...).

    module, one of:
      * an `nnx.Module`: `init(key)` returns its params as built (the key is not used;
        build it with another `nnx.Rngs` seed for another draw);
      * a function `rngs -> nnx.Module` (e.g. `lambda rngs: MLP(8, 4, rngs=rngs)`):
        `init(key)` builds it with `nnx.Rngs(key)`;
      * a `flax.linen.Module`: `init(key)` is `module.init(key, example_input)["params"]`;
      * an `equinox.Module`, where equinox is installed: its floating-point array
        leaves, keyed by their paths ("layers/0/weight"), as built.
    example_input: an input of the shape the map will see (linen only; any batch size).

    `apply(params, x)` is the module's `__call__` at `params`, a pure function of both
    (jit, grad and vmap it). The module must be deterministic: nnx variables other than
    `nnx.Param` (and an equinox module's non-float leaves) are held at their built values;
    a linen module may hold no collection but "params". `intermediates(params, x)` returns
    its hidden activations, keyed by path: every method's output (nnx `nnx.capture` with
    `method_outputs`) and every `sow`n `nnx.Intermediate`; every submodule's `__call__`
    output (linen `capture_intermediates`); none for equinox.
    """
    from flax import linen, nnx

    equinox = sys.modules.get("equinox")   # a user holding an equinox module imported it
    if isinstance(module, linen.Module):
        return _from_linen(module, example_input)
    if equinox is not None and isinstance(module, equinox.Module):
        return _from_equinox(module, equinox)
    if isinstance(module, nnx.Module):
        return _from_nnx(module, None)
    if callable(module):
        # Built once here for its structure; compile-time evaluation keeps the
        # fixed (non-param) state concrete when this runs inside a trace.
        with jax.ensure_compile_time_eval():
            built = module(nnx.Rngs(0))
        if not isinstance(built, nnx.Module):
            raise TypeError(f"from_flax: a function must build an nnx.Module from rngs; "
                            f"it built a {type(built).__name__}")
        return _from_nnx(built, module)
    raise TypeError(f"from_flax takes an nnx or linen module, a function rngs -> nnx.Module or "
                    f"an equinox module; got a {type(module).__name__}")


def _from_nnx(module, build: Callable | None) -> Map:
    from flax import nnx

    graphdef, template, rest = nnx.split(module, nnx.Param, ...)

    def init(key: jax.Array) -> Params:
        state = template if build is None else nnx.split(build(nnx.Rngs(key)), nnx.Param, ...)[1]
        return _str_keys(nnx.to_pure_dict(state))   # list indices too: checkpoints want str

    def merged(params):
        state = jax.tree.map(lambda v: v, template)   # a fresh State, filled below
        nnx.replace_by_pure_dict(state, params)
        return nnx.merge(graphdef, state, rest)

    def apply(params: Params, x: jax.Array) -> jax.Array:
        return merged(params)(x)

    def intermediates(params: Params, x: jax.Array) -> dict:
        kind = nnx.Intermediate
        _, found = nnx.capture(merged(params), kind, method_outputs=kind)(x)
        return _named(nnx.to_pure_dict(found))

    return Map(init, apply, intermediates)


def _from_linen(module, example_input) -> Map:
    from flax.core import unfreeze

    if example_input is None:
        raise TypeError("from_flax: a linen module needs example_input (its params are "
                        "shaped by their first input)")

    def init(key: jax.Array) -> Params:
        variables = unfreeze(module.init(key, example_input))
        extra = sorted(set(variables) - {"params"})
        if extra:
            raise TypeError(f"from_flax: linen collections other than params ({', '.join(extra)}) "
                            "are not supported: a map must be deterministic")
        return variables.get("params", {})

    def apply(params: Params, x: jax.Array) -> jax.Array:
        return module.apply({"params": params}, x)

    def intermediates(params: Params, x: jax.Array) -> dict:
        _, found = module.apply({"params": params}, x, capture_intermediates=True,
                                mutable=["intermediates"])
        return _named(found["intermediates"])

    return Map(init, apply, intermediates)


def _from_equinox(module, equinox) -> Map:
    arrays, static = equinox.partition(module, equinox.is_inexact_array)
    flat, treedef = jax.tree_util.tree_flatten_with_path(arrays)
    names = [jax.tree_util.keystr(path, simple=True, separator="/") for path, _ in flat]

    def init(key: jax.Array) -> Params:
        return {name: leaf for name, (_, leaf) in zip(names, flat)}

    def apply(params: Params, x: jax.Array) -> jax.Array:
        leaves = jax.tree.unflatten(treedef, [params[name] for name in names])
        return equinox.combine(leaves, static)(x)

    return Map(init, apply)


def _str_keys(tree):
    return {str(k): _str_keys(v) for k, v in tree.items()} if isinstance(tree, Mapping) else tree


def _named(tree, prefix: str = "") -> dict:
    """Nested captures {module: {method: (value, ...)}} as flat {"module/method": value};
    a value recorded n > 1 times gets "/0" ... "/n-1"."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_named(value, name + "/"))
        elif isinstance(value, (tuple, list)):
            out.update({name: value[0]} if len(value) == 1
                       else {f"{name}/{i}": v for i, v in enumerate(value)})
        else:
            out[name] = value
    return out
