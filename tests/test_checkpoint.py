"""Checkpoints: exact round trips, keep-N, any device count, SIGKILL at any moment,
corruption and config mismatches detected, nothing ever overwritten."""
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from pcmusic.training import checkpoint as ckpt
from pcmusic.training.config import apply_overrides, default_config
from pcmusic.errors import CheckpointError

CONFIG = default_config()


def make_state(seed=0, scale=1.0):
    k_w, k_run = jax.random.split(jax.random.key(seed))
    params = {"w": scale * jax.random.normal(k_w, (8, 16), jnp.float32), "b": jnp.arange(16.0, dtype=jnp.float32)}
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    # optax 0.2.8's bias correction (float ** int32 count) fails under strict promotion
    with jax.numpy_dtype_promotion("standard"):
        _, opt_state = optimizer.update(grads, opt_state, params)  # non-trivial mu, nu, count
    return {"params": params, "opt_state": opt_state, "key": k_run,
            "raw_key": jax.random.PRNGKey(seed + 7), "step": 3, "lr": 0.5,
            "host": np.arange(5, dtype=np.int64)}


def as_host(tree):
    return jax.tree.map(lambda x: np.asarray(jax.random.key_data(x) if ckpt.is_key(x) else x), tree)


def assert_same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(as_host(a)), jax.tree.leaves(as_host(b))):
        assert x.dtype == y.dtype and np.array_equal(x, y)


def tree_listing(directory):
    return sorted((str(p.relative_to(directory)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in directory.rglob("*"))


def test_round_trip_with_target_and_without(tmp_path):
    state = make_state()
    ckpt.save(tmp_path, 10, state=state, config=CONFIG, metrics={"energy": jnp.float32(1.25)},
              data_position={"epoch": 2, "index": 17})
    restored, meta = ckpt.restore(tmp_path, target=state, expected_config=CONFIG)
    assert_same(restored, state)
    # an abstract target from eval_shape holds 32-bit forms of the numpy/Python
    # leaves: same values, dtypes as the target asks
    target = jax.eval_shape(lambda: state)
    abstract, _ = ckpt.restore(tmp_path, target=target)
    for x, y, t in zip(jax.tree.leaves(as_host(abstract)), jax.tree.leaves(as_host(state)),
                       jax.tree.leaves(jax.tree.map(lambda t: t.dtype, target))):
        assert np.array_equal(x, y) and (x.dtype == t or jax.dtypes.issubdtype(t, jax.dtypes.prng_key))
    assert abstract["key"].dtype == state["key"].dtype
    # keys come back in the form the target asks for: raw key data here
    raw, _ = ckpt.restore(tmp_path, target=dict(state, key=jax.random.key_data(state["key"])))
    assert raw["key"].dtype == jnp.uint32
    assert raw["key"].tolist() == jax.random.key_data(state["key"]).tolist()
    assert restored["key"].dtype == state["key"].dtype  # typed key comes back typed
    assert np.array_equal(jax.random.normal(restored["key"], (4,)), jax.random.normal(state["key"], (4,)))
    assert meta["step"] == 10 and meta["metrics"] == {"energy": 1.25}
    assert meta["data_position"] == {"epoch": 2, "index": 17}
    assert apply_overrides(CONFIG, []) == CONFIG and meta["config"]["train"]["seed"] == CONFIG.train.seed
    # without a target: same leaves, containers as orbax stores them
    loose, _ = ckpt.restore(tmp_path)
    assert np.array_equal(loose["params"]["w"], state["params"]["w"])
    assert np.array_equal(loose["opt_state"][0]["nu"]["w"], state["opt_state"][0].nu["w"])
    assert jax.random.key_data(loose["key"]).tolist() == jax.random.key_data(state["key"]).tolist()


def test_keep_n_and_no_overwrite(tmp_path):
    with ckpt.Checkpointer(tmp_path, keep=2) as saver:
        for step in (1, 2, 3, 4):
            saver.save(step, state=make_state(step), config=CONFIG)
        assert saver.latest_step() == 4
    assert ckpt.list_steps(tmp_path) == [3, 4] and ckpt.latest_step(tmp_path) == 4
    before = tree_listing(tmp_path)
    for step in (4, 2):  # same step, older step: refused, nothing touched
        with pytest.raises(CheckpointError, match="nothing was overwritten"):
            ckpt.save(tmp_path, step, state=make_state(99), config=CONFIG)
    assert tree_listing(tmp_path) == before
    assert_same(ckpt.restore(tmp_path, target=make_state(4))[0], make_state(4))
    assert_same(ckpt.restore(tmp_path, target=make_state(3), step=3)[0], make_state(3))


SUBPROCESS_PRELUDE = """
import os, sys
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count={n}"
os.environ["JAX_PLATFORMS"] = "cpu"
import jax, jax.numpy as jnp, numpy as np
from pcmusic.training import checkpoint as ckpt
from pcmusic.training.config import default_config
"""


def run_python(code, n_devices, *args, **kwargs):
    script = SUBPROCESS_PRELUDE.format(n=n_devices) + textwrap.dedent(code)
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], **kwargs)


def test_save_sharded_on_8_restore_on_1(tmp_path):
    assert jax.device_count() == 8
    mesh = jax.make_mesh((8,), ("data",))
    state = make_state()
    sharded = dict(state, params={"w": jax.device_put(state["params"]["w"], NamedSharding(mesh, P("data"))),
                                  "b": state["params"]["b"]},
                   keys=jax.device_put(jax.random.split(state["key"], 8), NamedSharding(mesh, P("data"))))
    ckpt.save(tmp_path / "ck", 1, state=sharded, config=CONFIG)
    np.save(tmp_path / "w.npy", np.asarray(state["params"]["w"]))
    np.save(tmp_path / "keys.npy", np.asarray(jax.random.key_data(sharded["keys"])))
    child = run_python("""
        d = sys.argv[1]
        assert jax.device_count() == 1
        state, meta = ckpt.restore(d + "/ck", target=None)
        assert np.array_equal(state["params"]["w"], np.load(d + "/w.npy"))
        assert np.array_equal(jax.random.key_data(state["keys"]), np.load(d + "/keys.npy"))
        assert state["keys"].shape == (8,) and meta["step"] == 1
        print("OK")
    """, 1, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0 and "OK" in out, err[-3000:]


def test_save_on_1_restore_sharded_on_8(tmp_path):
    child = run_python("""
        k = jax.random.key(3)
        state = {"w": jax.random.normal(k, (16, 4), jnp.float32), "key": k, "step": 5}
        ckpt.save(sys.argv[1], 5, state=state, config=default_config())
    """, 1, tmp_path, stderr=subprocess.PIPE, text=True)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err[-3000:]
    mesh = jax.make_mesh((8,), ("data",))
    k = jax.random.key(3)
    expected = {"w": jax.random.normal(k, (16, 4), jnp.float32), "key": k, "step": 5}
    target = dict(jax.eval_shape(lambda: expected), step=0)  # a Python int stays one
    target["w"] = jax.ShapeDtypeStruct((16, 4), jnp.float32, sharding=NamedSharding(mesh, P("data")))
    restored, _ = ckpt.restore(tmp_path, target=target, expected_config=CONFIG)
    assert restored["w"].sharding == target["w"].sharding
    assert len(restored["w"].addressable_shards) == 8
    assert_same(restored, expected)


KILL_SAVER = """
step = (ckpt.latest_step(sys.argv[1]) or 0) + 1
with ckpt.Checkpointer(sys.argv[1], keep=2) as saver:
    while True:
        # ~32 MB so that a save takes long enough to be killed in the middle
        big = jnp.full((2048, 4096), float(step), jnp.float32)
        state = {"big": big, "key": jax.random.fold_in(jax.random.key(0), step), "step": step}
        print("begin", step, flush=True)
        saver.save(step, state=state, config=default_config(), data_position={"step": step})
        saver.wait_until_finished()
        print("end", step, flush=True)
        step += 1
"""


def wait_for_line(child, lines, prefix):
    while not (lines and lines[-1].startswith(prefix)):
        line = child.stdout.readline()
        assert line, "saver exited early"
        lines.append(line.strip())


def wait_for_tmp_dir(directory, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(".orbax-checkpoint-tmp" in p.name for p in directory.iterdir()):
            return
        time.sleep(0.0005)
    raise AssertionError("no save in progress was seen")


@pytest.mark.parametrize("when", ["inside_orbax_write", "right_after_begin", "random"])
def test_sigkill_at_any_moment_leaves_last_complete_checkpoint(tmp_path, when):
    rng = random.Random(1234)
    for attempt in range(2 if when == "random" else 1):
        child = run_python(KILL_SAVER, 1, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        lines = []
        wait_for_line(child, lines, "end")  # one save finished: the steady state
        wait_for_line(child, lines, "begin")
        if when == "inside_orbax_write":  # files half written into <step>.orbax-checkpoint-tmp
            wait_for_tmp_dir(tmp_path)
        elif when == "random":
            time.sleep(rng.uniform(0.0, 0.3))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        lines += [line.strip() for line in child.stdout.read().splitlines()]
        child.stdout.close()
        last_end = max(int(line.split()[1]) for line in lines if line.startswith("end"))
        last_begin = max(int(line.split()[1]) for line in lines if line.startswith("begin"))
        if when != "random":
            assert last_begin == last_end + 1  # the kill did land mid-save
        step = ckpt.latest_step(tmp_path)
        # the finished save must be there; the killed one only if it had completed
        assert step in (last_end, last_begin)
        target = {"big": jax.ShapeDtypeStruct((2048, 4096), jnp.float32),
                  "key": jax.eval_shape(lambda: jax.random.key(0)), "step": 0}
        state, meta = ckpt.restore(tmp_path, target=target, expected_config=CONFIG)
        assert meta["data_position"] == {"step": step} and state["step"] == step
        assert float(state["big"].min()) == float(state["big"].max()) == float(step)
        assert jax.random.key_data(state["key"]).tolist() == \
            jax.random.key_data(jax.random.fold_in(jax.random.key(0), step)).tolist()
    ckpt.Checkpointer(tmp_path).close()  # a writer clears interrupted saves, keeps the rest
    assert not [p for p in tmp_path.iterdir() if ".orbax-checkpoint-tmp" in p.name]
    assert ckpt.latest_step(tmp_path) == step


def save_two(directory):
    ckpt.save(directory, 1, state=make_state(1), config=CONFIG)
    ckpt.save(directory, 2, state=make_state(2), config=CONFIG)


def largest_array_file(step_dir):
    return max((p for p in (step_dir / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


@pytest.mark.parametrize("damage", ["flip", "truncate", "meta", "silent"])
def test_corrupt_checkpoint_is_detected_and_earlier_step_restores(tmp_path, damage):
    save_two(tmp_path)
    if damage == "silent":
        # arrays that orbax reads without complaint but that are not what was saved
        # (a flipped byte inside compressed data can do this): only checksums see it
        shutil.rmtree(tmp_path / "2" / "state")
        shutil.copytree(tmp_path / "1" / "state", tmp_path / "2" / "state")
    elif damage == "meta":
        path = tmp_path / "2" / "meta" / "metadata"
    else:
        path = largest_array_file(tmp_path / "2")
    if damage != "silent":
        data = bytearray(path.read_bytes())
        if damage == "flip":
            data[len(data) // 2] ^= 0x55
        else:
            data = data[: len(data) // 2]
        path.write_bytes(bytes(data))
    before = tree_listing(tmp_path)
    with pytest.raises(CheckpointError) as info:
        ckpt.restore(tmp_path, target=make_state())
    message = str(info.value)
    assert str(tmp_path / "2") in message and "corrupt" in message and "step=1" in message
    if damage == "silent":
        assert "checksum mismatch in" in message and "params/w" in message
    assert tree_listing(tmp_path) == before
    assert_same(ckpt.restore(tmp_path, target=make_state(), step=1)[0], make_state(1))


def test_config_mismatch_lists_keys(tmp_path):
    ckpt.save(tmp_path, 1, state=make_state(), config=CONFIG)
    other = apply_overrides(CONFIG, ["train.learning_rate=0.5", "model.latent_dims=[4, 4, 4]"])
    with pytest.raises(CheckpointError) as info:
        ckpt.restore(tmp_path, expected_config=other)
    message = str(info.value)
    assert "train.learning_rate: checkpoint 0.001, expected 0.5" in message
    assert "model.latent_dims" in message and "model.controls.hop" not in message


def test_structure_mismatch(tmp_path):
    ckpt.save(tmp_path, 1, state=make_state(), config=CONFIG)
    target = make_state()
    target["params"] = {"w": jnp.zeros((8, 15), jnp.float32), "extra": jnp.zeros(2, jnp.float32)}
    with pytest.raises(CheckpointError) as info:
        ckpt.restore(tmp_path, target=target)
    message = str(info.value)
    assert "params/extra" in message and "params/b" in message and "[8, 16]" in message


def test_missing_empty_and_incomplete_directories(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        ckpt.restore(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        ckpt.restore(tmp_path)
    (tmp_path / "7.orbax-checkpoint-tmp-1234").mkdir()
    with pytest.raises(CheckpointError, match="only incomplete checkpoints.*interrupted"):
        ckpt.restore(tmp_path)
    assert (tmp_path / "7.orbax-checkpoint-tmp-1234").exists()  # readers delete nothing
    ckpt.save(tmp_path, 1, state=make_state(), config=CONFIG)
    with pytest.raises(CheckpointError, match=r"step 5 .*available steps: \[1\]"):
        ckpt.restore(tmp_path, step=5)
