"""Minimal criterion coevolution (MCC) as fixed-capacity JAX arrays.

Brant & Stanley, "Minimal criterion coevolution: a new approach to open-ended search",
GECCO 2017; "Diversity preservation in minimal criterion coevolution through resource
limitation", GECCO 2020. No fitness: two bounded FIFO queues (here generators and
listeners); each batch takes parents from the front of each queue and moves them to
the back, mutates them asexually, and keeps only the children that meet their
minimal criterion (MC); when a queue is over capacity its oldest members (by birth)
are removed. With a resource limit R a listener may count towards the MC of at most
R generators over its lifetime.

A `Queue` is a pytree of plain arrays with a leading capacity axis (genomes may be any
pytree of such arrays), so everything here jits, vmaps over independent runs and
shards the capacity axis over devices. Two integer keys order the members:
`position` (queue order: smallest at the front; taking parents gives them new, largest
positions) and `birth` (age: removal drops the smallest births). Both come from one
counter, `clock`, that every take and push advances.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from pcmusic.errors import PcmusicError

_NEVER = jnp.iinfo(jnp.int32).max


class Queue(NamedTuple):
    genomes: Any              # pytree, every leaf [capacity, ...]
    valid: jax.Array          # bool [capacity]: slot holds a member
    position: jax.Array       # int32 [capacity]: queue order, smallest = front
    birth: jax.Array          # int32 [capacity]: birth time, smallest = oldest
    resource_used: jax.Array  # int32 [capacity]: times credited towards others' MC
    clock: jax.Array          # int32 []: next position / birth to hand out


def _capacity(queue: Queue) -> int:
    return queue.valid.shape[0]


def _gather(tree, index):
    return jax.tree_util.tree_map(lambda leaf: leaf[index], tree)


def queue_init(seeds, *, capacity: int) -> Queue:
    """A queue of `capacity` slots holding the `seeds` (pytree, leaves [n_seeds, ...]),
    the first seed at the front and oldest. Seeds should already meet their MC."""
    n_seeds = {leaf.shape[0] for leaf in jax.tree_util.tree_leaves(seeds)}
    if len(n_seeds) != 1 or not 0 < next(iter(n_seeds)) <= capacity:
        raise PcmusicError(f"queue_init: seeds need one common leading size in 1..capacity="
                           f"{capacity}, got leading sizes {sorted(n_seeds)}")
    n = n_seeds.pop()

    def pad(leaf):
        leaf = jnp.asarray(leaf)
        return jnp.concatenate([leaf, jnp.zeros((capacity - n,) + leaf.shape[1:], leaf.dtype)])

    order = jnp.where(jnp.arange(capacity) < n, jnp.arange(capacity, dtype=jnp.int32), _NEVER)
    return Queue(jax.tree_util.tree_map(pad, seeds), jnp.arange(capacity) < n, order, order,
                 jnp.zeros(capacity, jnp.int32), jnp.asarray(n, jnp.int32))


def queue_size(queue: Queue) -> jax.Array:
    """Number of members, int32 []."""
    return jnp.sum(queue.valid).astype(jnp.int32)


def queue_order(queue: Queue) -> jax.Array:
    """Slot indices front to back, int32 [capacity]; the first `queue_size` are members."""
    return jnp.argsort(jnp.where(queue.valid, queue.position, _NEVER)).astype(jnp.int32)


def take_parents(queue: Queue, n: int) -> tuple[Any, jax.Array, Queue]:
    """The `n` members at the front (cycling if the queue holds fewer), then moved to
    the back in the same order. Returns (parents pytree [n, ...], parent_valid bool [n],
    the new queue); parent_valid is all False for an empty queue."""
    size = queue_size(queue)
    slots = queue_order(queue)[jnp.arange(n) % jnp.maximum(size, 1)]
    moved = jnp.arange(n) < size  # a slot taken twice (cycling) is moved once
    new_position = queue.position.at[jnp.where(moved, slots, _capacity(queue))].set(
        queue.clock + jnp.arange(n, dtype=jnp.int32), mode="drop")
    queue = queue._replace(position=new_position, clock=queue.clock + n)
    return _gather(queue.genomes, slots), jnp.broadcast_to(size > 0, (n,)), queue


def push(queue: Queue, children, accept_mask) -> Queue:
    """Append the accepted `children` (pytree [n, ...]; accept_mask bool [n]) at the back
    in batch order, then keep the youngest `capacity` members: the oldest by birth are
    removed first, wherever they stand in the queue."""
    capacity = _capacity(queue)
    accept = jnp.asarray(accept_mask, bool)
    stamp = queue.clock + jnp.cumsum(accept).astype(jnp.int32) - 1
    stamp = jnp.where(accept, stamp, -1)
    pooled = Queue(
        jax.tree_util.tree_map(lambda q, c: jnp.concatenate([q, c.astype(q.dtype)]),
                               queue.genomes, children),
        jnp.concatenate([queue.valid, accept]),
        jnp.concatenate([queue.position, jnp.where(accept, stamp, _NEVER)]),
        jnp.concatenate([queue.birth, jnp.where(accept, stamp, _NEVER)]),
        jnp.concatenate([queue.resource_used, jnp.zeros(accept.shape, jnp.int32)]),
        queue.clock + jnp.sum(accept).astype(jnp.int32))
    _, keep = jax.lax.top_k(jnp.where(pooled.valid, pooled.birth, -1), capacity)
    return pooled._replace(genomes=_gather(pooled.genomes, keep), valid=pooled.valid[keep],
                           position=pooled.position[keep], birth=pooled.birth[keep],
                           resource_used=pooled.resource_used[keep])


def generator_mc(likes, *, resource_used, resource_limit: int | None,
                 listener_valid=None, generator_valid=None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Generator MC: liked by at least one listener with spare resource.

    likes: bool [n_gen, n_lis], likes[g, l] = listener l likes generator g;
    resource_used: int32 [n_lis], credits each listener has already given;
    resource_limit: R, the most generators one listener may count for (None: no limit).
    Resources are consumed in batch order: generators g = 0, 1, ... in turn, each
    passing generator credited to the lowest-index listener that likes it and still has
    spare resource (Brant & Stanley 2020 credit the first maze an agent solves).
    Returns (passed bool [n_gen], credited listener int32 [n_gen] (-1: none),
    new resource_used int32 [n_lis]).
    """
    likes = jnp.asarray(likes, bool)
    n_gen, n_lis = likes.shape
    if listener_valid is not None:
        likes = likes & jnp.asarray(listener_valid, bool)[None, :]
    if generator_valid is not None:
        likes = likes & jnp.asarray(generator_valid, bool)[:, None]
    limit = _NEVER if resource_limit is None else jnp.int32(resource_limit)

    def credit(used, row):
        eligible = row & (used < limit)
        passed = jnp.any(eligible)
        listener = jnp.argmax(eligible).astype(jnp.int32)
        used = used + (passed & (jnp.arange(n_lis) == listener)).astype(jnp.int32)
        return used, (passed, jnp.where(passed, listener, -1))

    used, (passed, credited) = jax.lax.scan(credit, jnp.asarray(resource_used, jnp.int32), likes)
    return passed, credited, used


def listener_mc(likes, *, generator_valid=None) -> jax.Array:
    """Listener MC: likes at least one and dislikes at least one (valid) generator.
    likes: bool [n_gen, n_lis]; returns bool [n_lis]."""
    likes = jnp.asarray(likes, bool)
    valid = (jnp.ones(likes.shape[0], bool) if generator_valid is None
             else jnp.asarray(generator_valid, bool))[:, None]
    return jnp.any(likes & valid, axis=0) & jnp.any(~likes & valid, axis=0)


class MCCState(NamedTuple):
    generators: Queue
    listeners: Queue


class MCCStepInfo(NamedTuple):
    generator_children: Any        # pytree [n_gen_children, ...]
    generator_passed: jax.Array    # bool [n_gen_children] (accepted into the queue)
    generator_credited: jax.Array  # int32 [n_gen_children], listener slot credited, -1 none
    listener_children: Any         # pytree [n_lis_children, ...]
    listener_passed: jax.Array     # bool [n_lis_children]


def mcc_batch_step(state: MCCState, key, *, mutate_gen: Callable, mutate_lis: Callable,
                   evaluate_likes: Callable, n_gen_children: int, n_lis_children: int,
                   resource_limit: int | None, mc_always_true: bool = False
                   ) -> tuple[MCCState, MCCStepInfo]:
    """One MCC batch on both queues; jit it with the callables fixed, e.g.
    `jax.jit(functools.partial(mcc_batch_step, mutate_gen=..., ...))`.

    Domain functions, all batched over a leading axis:
      mutate_gen(key, parents) -> children, mutate_lis(key, parents) -> children;
      evaluate_likes(key, generators, listeners) -> bool [n_gen, n_lis] (may be called on
      empty slots' zero genomes: return anything finite, the masks ignore them).
    Generator children are judged by the current listeners (with resource limit R =
    `resource_limit`, None for no limit), listener children by the current generators.
    mc_always_true: the control in which every child is accepted (no resources spent).
    """
    k_gen, k_lis, k_like_gen, k_like_lis = jax.random.split(key, 4)
    gen_parents, gen_ok, generators = take_parents(state.generators, n_gen_children)
    lis_parents, lis_ok, listeners = take_parents(state.listeners, n_lis_children)
    gen_children = mutate_gen(k_gen, gen_parents)
    lis_children = mutate_lis(k_lis, lis_parents)

    likes = evaluate_likes(k_like_gen, gen_children, listeners.genomes)
    gen_pass, credited, used = generator_mc(likes, resource_used=listeners.resource_used,
                                            resource_limit=resource_limit,
                                            listener_valid=listeners.valid)
    lis_pass = listener_mc(evaluate_likes(k_like_lis, generators.genomes, lis_children),
                           generator_valid=generators.valid)
    if mc_always_true:
        gen_pass, lis_pass = jnp.ones_like(gen_pass), jnp.ones_like(lis_pass)
        credited, used = jnp.full_like(credited, -1), listeners.resource_used
    gen_pass, lis_pass = gen_pass & gen_ok, lis_pass & lis_ok
    state = MCCState(push(generators, gen_children, gen_pass),
                     push(listeners._replace(resource_used=used), lis_children, lis_pass))
    return state, MCCStepInfo(gen_children, gen_pass, credited, lis_children, lis_pass)
