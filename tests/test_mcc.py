"""MCC: FIFO queue invariants, minimal criteria on hand-made like-matrices, resource limits,
controls, and a jitted batch step."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pcmusic.creative.mcc import (MCCState, generator_mc, listener_mc, mcc_batch_step, push,
                                  queue_init, queue_order, queue_size, take_parents)
from pcmusic.errors import PcmusicError

take = jax.jit(take_parents, static_argnums=1)
push_jit = jax.jit(push)


def ids_front_to_back(queue):
    order = np.asarray(queue_order(queue))[:int(queue_size(queue))]
    return np.asarray(queue.genomes["id"])[order].tolist()


def make_queue(n_seeds=3, capacity=5):
    seeds = {"id": jnp.arange(n_seeds, dtype=jnp.int32),
             "x": jnp.ones((n_seeds, 2), jnp.float32) * jnp.arange(n_seeds, dtype=jnp.float32)[:, None]}
    return queue_init(seeds, capacity=capacity)


def children(ids):
    ids = jnp.asarray(ids, jnp.int32)
    return {"id": ids, "x": jnp.zeros((ids.shape[0], 2), jnp.float32)}


def test_parents_come_from_the_front_and_move_to_the_back():
    q = make_queue(3, capacity=5)
    assert ids_front_to_back(q) == [0, 1, 2]
    parents, ok, q = take(q, 2)
    assert np.asarray(parents["id"]).tolist() == [0, 1] and bool(ok.all())
    assert ids_front_to_back(q) == [2, 0, 1]
    np.testing.assert_array_equal(np.asarray(parents["x"]), [[0, 0], [1, 1]])
    # more parents than members: cycle, and each member moves to the back once
    parents, ok, q = take(q, 4)
    assert np.asarray(parents["id"]).tolist() == [2, 0, 1, 2]
    assert ids_front_to_back(q) == [2, 0, 1]


def test_push_appends_accepted_and_removes_the_oldest_first():
    q = make_queue(3, capacity=5)
    _, _, q = take(q, 1)                       # 0 is the oldest but now at the back
    q = push_jit(q, children([10, 11, 12]), jnp.array([True, False, True]))
    assert int(queue_size(q)) == 5
    assert ids_front_to_back(q) == [1, 2, 0, 10, 12]          # 11 rejected
    q = push_jit(q, children([20, 21, 22]), jnp.array([True, True, True]))
    assert int(queue_size(q)) == 5                             # never above capacity
    # births 0, 1, 2 were the oldest: removed although 0 stood at the back
    assert ids_front_to_back(q) == [10, 12, 20, 21, 22]
    births = np.asarray(q.birth)[np.asarray(queue_order(q))]
    assert np.all(np.diff(births) > 0)
    # more accepted children than capacity: only the youngest survive
    q = push_jit(q, children(np.arange(30, 37)), jnp.ones(7, bool))
    assert ids_front_to_back(q) == [32, 33, 34, 35, 36]


def test_empty_queue_and_bad_seeds():
    q = make_queue(1, capacity=3)
    q = q._replace(valid=jnp.zeros(3, bool))
    _, ok, _ = take(q, 2)
    assert not bool(ok.any())
    with pytest.raises(PcmusicError, match="capacity"):
        make_queue(6, capacity=5)


LIKES = np.array([  # likes[g, l]: 4 generators x 3 listeners
    [1, 1, 0],
    [1, 0, 0],
    [1, 0, 0],
    [0, 0, 0],
], bool)


def test_generator_mc_without_and_with_resource_limit():
    used0 = jnp.zeros(3, jnp.int32)
    passed, credited, used = generator_mc(LIKES, resource_used=used0, resource_limit=None)
    np.testing.assert_array_equal(passed, [1, 1, 1, 0])
    np.testing.assert_array_equal(credited, [0, 0, 0, -1])
    np.testing.assert_array_equal(used, [3, 0, 0])
    # R = 1: g0 takes listener 0, g1 finds no spare liker, g2 neither
    passed, credited, used = generator_mc(LIKES, resource_used=used0, resource_limit=1)
    np.testing.assert_array_equal(passed, [1, 0, 0, 0])
    np.testing.assert_array_equal(credited, [0, -1, -1, -1])
    # R = 2 with listener 0 already spent once: g0 -> 0, g1 finds 0 spent
    passed, credited, used = generator_mc(LIKES, resource_used=jnp.array([1, 0, 0], jnp.int32),
                                          resource_limit=2)
    np.testing.assert_array_equal(passed, [1, 0, 0, 0])
    np.testing.assert_array_equal(used, [2, 0, 0])
    # invalid listener slots do not count
    passed, _, _ = generator_mc(LIKES, resource_used=used0, resource_limit=None,
                                listener_valid=jnp.array([False, True, True]))
    np.testing.assert_array_equal(passed, [1, 0, 0, 0])


def test_no_listener_credits_more_than_r_generators_on_random_likes():
    likes = jax.random.bernoulli(jax.random.key(0), 0.6, (40, 7))
    for limit in (1, 3, 5):
        passed, credited, used = jax.jit(generator_mc, static_argnames="resource_limit")(
            likes, resource_used=jnp.zeros(7, jnp.int32), resource_limit=limit)
        assert int(used.max()) <= limit
        # the credits account for every pass, and each credited listener liked it
        np.testing.assert_array_equal(np.bincount(np.asarray(credited)[np.asarray(passed)],
                                                  minlength=7), used)
        c = np.asarray(credited)[np.asarray(passed)]
        assert np.asarray(likes)[np.asarray(passed), c].all()
        # a generator fails only if every listener that likes it is spent
        for g in np.flatnonzero(~np.asarray(passed)):
            liked_by = np.flatnonzero(np.asarray(likes)[g])
            assert np.all(np.asarray(used)[liked_by] >= limit)


def test_listener_mc_needs_a_like_and_a_dislike():
    np.testing.assert_array_equal(listener_mc(LIKES), [1, 1, 0])
    # listener 0 dislikes only generator 3; without it, 0 likes everything and fails
    np.testing.assert_array_equal(
        listener_mc(LIKES, generator_valid=jnp.array([True, True, True, False])), [0, 1, 0])


def toy_domain():
    """Generators and listeners are numbers; a listener likes a generator within 1.0."""
    def mutate(key, parents):
        step = jax.random.uniform(key, parents["x"].shape, minval=-0.5, maxval=0.5)
        return {"id": parents["id"] + 1000, "x": parents["x"] + step}

    def likes(key, gens, lis):
        return jnp.abs(gens["x"][:, None, 0] - lis["x"][None, :, 0]) < 1.0

    return dict(mutate_gen=mutate, mutate_lis=mutate, evaluate_likes=likes)


@pytest.mark.parametrize("limit,always", [(2, False), (None, True)])
def test_batch_step_jits_and_keeps_invariants(limit, always):
    gen_seeds = {"id": jnp.arange(4, dtype=jnp.int32), "x": jnp.linspace(0, 3, 4)[:, None] * jnp.ones((1, 2))}
    lis_seeds = {"id": jnp.arange(3, dtype=jnp.int32), "x": jnp.array([[0.5, 0], [1.5, 0], [10.0, 0]])}
    state = MCCState(queue_init(gen_seeds, capacity=8), queue_init(lis_seeds, capacity=6))
    step = jax.jit(functools.partial(mcc_batch_step, **toy_domain(), n_gen_children=4,
                                     n_lis_children=2, resource_limit=limit, mc_always_true=always))
    key = jax.random.key(1)
    accepted = 0
    for _ in range(6):
        key, k = jax.random.split(key)
        before = int(queue_size(state.generators))
        state, info = step(state, k)
        accepted += int(info.generator_passed.sum())
        assert int(queue_size(state.generators)) == min(8, before + int(info.generator_passed.sum()))
        assert int(queue_size(state.listeners)) <= 6
        if limit is not None:
            assert int(state.listeners.resource_used.max()) <= limit
    if always:
        assert accepted == 24 and int(state.listeners.resource_used.max()) == 0
    else:
        assert 0 < accepted < 24
