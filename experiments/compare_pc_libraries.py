"""Time one PC training workload in pcmusic and in the anchor libraries PCX, JPC and FabricPC.

Workload: a discriminative PC MLP, widths 784-512-512-10 at batch 256 (and,
with --wide, 4096x4 at a batch that fits the machine), tanh hidden layers, linear label
layer, squared-error energies; input clamped at the source of the predictions and one-hot
labels clamped at the other end; one train step = feed-forward initialisation, T = 20
SGD steps (lr 0.1) on the hidden activities, then one Adam step (lr 1e-3) on the weights,
all inside one jit. Each library's step is written in its own documented idiom (PCX:
`pxf.jit` train_on_batch with Vodes and `pxu.Optim`; JPC: `init_activities_with_ffwd`,
`update_pc_activities` in a loop, `update_pc_params` under `eqx.filter_jit`; FabricPC:
a `graph` of Linear nodes with `InferenceSGD` and `make_train_step`). Where a library's
defaults differ (batch mean vs sum energy, activation before vs after the weights),
its own default is kept: the matmul work is the same and timings do not depend on it.

Each anchor runs in its own virtual environment under .bench/ (git-ignored), never as a
pcmusic dependency, on the same jax as pcmusic:
- PCX and FabricPC from PyPI. PCX 0.6.3 pins jax<0.5: it is installed with its pin
  overridden (jax 0.10.2, equinox >= 0.13, which it needs on that jax).
- JPC from a source snapshot of github.com/thebuckleylab/jpc placed in .bench/jpc-src
  (not committed). It pins jax<=0.5.2 and imports `jaxlib.xla_extension`, which jax 0.10
  no longer has: it is installed with --no-deps and one import line is patched in the
  installed copy to read `PjitFunction` from `jaxlib._jax`.

Usage:
    python experiments/compare_pc_libraries.py --setup      # build the three venvs
    python experiments/compare_pc_libraries.py [--rounds 3] [--wide]
Rounds alternate the libraries so that load on a shared machine hits all of them alike;
the table reports the best round's median. Results also go to .bench/compare_pc.json.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"
JAX_PIN = ["jax==0.10.2", "jaxlib==0.10.2"]

# Shared by every child process: time `step()` (which must block) and print one JSON line.
TIMER = r"""
import json, sys, time
import jax
def report(name, version, step, n_repeats, energy=float("nan")):
    for _ in range(2):
        step()
    times = []
    for _ in range(n_repeats):
        t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
    times.sort()
    print("RESULT " + json.dumps({"library": name, "version": version, "jax": jax.__version__,
          "ms_median": 1e3 * times[len(times) // 2], "ms_min": 1e3 * times[0], "energy": energy}))
widths = tuple(json.loads(sys.argv[1])); batch = int(sys.argv[2]); n_repeats = int(sys.argv[3])
T, LR_H, LR_W = 20, 0.1, 1e-3
"""

PCMUSIC = TIMER + r"""
import jax.numpy as jnp
from pcmusic.bench import pc as bench
step, params, opt_state, x, y = bench.build(widths, batch, check_every=CHECK_EVERY)
state = {"p": params, "o": opt_state}
def train():
    state["p"], state["o"], e = step(state["p"], state["o"], x, y)
    jax.block_until_ready(e)
report("pcmusic", "0.1.0", train, n_repeats)
"""

PCX = TIMER + r"""
import jax.numpy as jnp, optax, importlib.metadata as md
import pcx as px, pcx.predictive_coding as pxc, pcx.nn as pxnn, pcx.utils as pxu, pcx.functional as pxf
px.RKG.seed(0)

class Model(pxc.EnergyModule):
    def __init__(self, widths):
        super().__init__()
        self.act_fn = px.static(jnp.tanh)
        self.layers = [pxnn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])]
        self.vodes = [pxc.Vode() for _ in widths[1:-1]] + [pxc.Vode(pxc.se_energy)]
        self.vodes[-1].h.frozen = True
    def __call__(self, x, y):
        for v, l in zip(self.vodes[:-1], self.layers[:-1]):
            x = v(self.act_fn(l(x)))
        x = self.vodes[-1](self.layers[-1](x))
        if y is not None:
            self.vodes[-1].set("h", y)
        return self.vodes[-1].get("u")

@pxf.vmap(pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0)), in_axes=(0, 0), out_axes=0)
def forward(x, y, *, model):
    return model(x, y)

@pxf.vmap(pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0)), in_axes=(0,), out_axes=(None, 0),
          axis_name="batch")
def energy(x, *, model):
    y_ = model(x, None)
    return jax.lax.psum(model.energy(), "batch"), y_

@pxf.jit(static_argnums=0)
def train_on_batch(T, x, y, *, model, optim_w, optim_h):
    model.train()
    with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
        forward(x, y, model=model)
    optim_h.init(pxu.M_hasnot(pxc.VodeParam, frozen=True)(model))
    for _ in range(T):
        with pxu.step(model, clear_params=pxc.VodeParam.Cache):
            (e, y_), g = pxf.value_and_grad(pxu.M_hasnot(pxc.VodeParam, frozen=True).to([False, True]),
                                            has_aux=True)(energy)(x, model=model)
        optim_h.step(model, g["model"])
    optim_h.clear()
    with pxu.step(model, clear_params=pxc.VodeParam.Cache):
        (e, y_), g = pxf.value_and_grad(pxu.M(pxnn.LayerParam).to([False, True]),
                                        has_aux=True)(energy)(x, model=model)
    optim_w.step(model, g["model"], scale_by=1.0 / x.shape[0])
    return e

model = Model(widths)
key = jax.random.PRNGKey(0)
x = jax.random.uniform(key, (batch, widths[0]))
y = jax.nn.one_hot(jax.random.randint(key, (batch,), 0, widths[-1]), widths[-1])
with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
    forward(jnp.zeros((batch, widths[0])), None, model=model)
    optim_h = pxu.Optim(lambda: optax.sgd(LR_H))
    optim_w = pxu.Optim(lambda: optax.adam(LR_W), pxu.M(pxnn.LayerParam)(model))
def train():
    jax.block_until_ready(train_on_batch(T, x, y, model=model, optim_w=optim_w, optim_h=optim_h))
report("PCX", md.version("pcx"), train, n_repeats)
"""

JPC = TIMER + r"""
import equinox as eqx, optax, jpc, importlib.metadata as md
key = jax.random.PRNGKey(0)
k_model, k_x = jax.random.split(key)
model = jpc.make_mlp(k_model, input_dim=widths[0], width=widths[1], depth=len(widths) - 1,
                     output_dim=widths[-1], act_fn="tanh", use_bias=True)
x = jax.random.uniform(k_x, (batch, widths[0]))
y = jax.nn.one_hot(jax.random.randint(k_x, (batch,), 0, widths[-1]), widths[-1])
activity_optim = optax.sgd(LR_H)
param_optim = optax.adam(LR_W)
param_opt_state = param_optim.init((eqx.filter(model, eqx.is_array), None))

@eqx.filter_jit
def train_step(model, param_opt_state, x, y):
    activities = jpc.init_activities_with_ffwd(model=model, input=x)
    activity_opt_state = activity_optim.init(activities)
    for _ in range(T):
        result = jpc.update_pc_activities(params=(model, None), activities=activities,
                                          optim=activity_optim, opt_state=activity_opt_state,
                                          output=y, input=x)
        activities, activity_opt_state = result["activities"], result["opt_state"]
    result = jpc.update_pc_params(params=(model, None), activities=activities, optim=param_optim,
                                  opt_state=param_opt_state, output=y, input=x)
    return result["model"], result["opt_state"]

state = {"m": model, "o": param_opt_state}
def train():
    state["m"], state["o"] = train_step(state["m"], state["o"], x, y)
    jax.block_until_ready(eqx.filter(state["m"], eqx.is_array))
report("JPC", md.version("jpc") + " (git snapshot)", train, n_repeats)
"""

FABRICPC = TIMER + r"""
import optax, importlib.metadata as md
from fabricpc.nodes import Linear
from fabricpc.core.topology import Edge
from fabricpc.core.activations import TanhActivation, IdentityActivation
from fabricpc.core.inference import InferenceSGD
from fabricpc.graph_assembly import TaskMap, graph
from fabricpc.graph_initialization import initialize_params
from fabricpc.training import make_train_step

nodes = [Linear(shape=(widths[0],), name="input")]
for i, n in enumerate(widths[1:-1]):
    nodes.append(Linear(shape=(n,), activation=TanhActivation(), name=f"hidden{i}"))
nodes.append(Linear(shape=(widths[-1],), activation=IdentityActivation(), name="output"))
edges = [Edge(source=a, target=b.slot("in")) for a, b in zip(nodes[:-1], nodes[1:])]
structure = graph(nodes=nodes, edges=edges, task_map=TaskMap(x=nodes[0], y=nodes[-1]),
                  inference=InferenceSGD(eta_infer=LR_H, infer_steps=T))
key = jax.random.PRNGKey(0)
params = initialize_params(structure, key)
optimizer = optax.adam(LR_W)
opt_state = optimizer.init(params)
step = make_train_step(structure, optimizer)
x = jax.random.uniform(key, (batch, widths[0]))
y = jax.nn.one_hot(jax.random.randint(key, (batch,), 0, widths[-1]), widths[-1])
batch_dict = {"x": x, "y": y}
state = {"p": params, "o": opt_state}
def train():
    state["p"], state["o"], metrics, _ = step(state["p"], state["o"], batch_dict, key)
    jax.block_until_ready(metrics)
report("FabricPC", md.version("fabricpc"), train, n_repeats)
"""

# pcmusic checks the energy (divergence, history) every inference step by default; the
# anchors never compute it. check_every=20 checks at the first step and the end only.
LIBRARIES = {"pcmusic": (sys.executable, PCMUSIC.replace("CHECK_EVERY", "1")),
             "pcmusic check_every=20": (sys.executable, PCMUSIC.replace("CHECK_EVERY", "20")),
             "PCX": (BENCH / "pcx/bin/python", PCX),
             "JPC": (BENCH / "jpc/bin/python", JPC), "FabricPC": (BENCH / "fabricpc/bin/python", FABRICPC)}


NOTES = {"PCX": "pin jax<0.5 overridden (+ equinox 0.13)",
         "JPC": "--no-deps; jaxlib.xla_extension import patched",
         "pcmusic": "energy checked every step",
         "pcmusic check_every=20": "energy checked at step 0 and the end"}


def _pip(venv: pathlib.Path, *args: str) -> None:
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", *args], check=True)


def setup() -> None:
    """Create .bench/{pcx,jpc,fabricpc} venvs on jax 0.10.2 (see module docstring)."""
    BENCH.mkdir(exist_ok=True)
    for name in ("pcx", "jpc", "fabricpc"):
        venv = BENCH / name
        if not (venv / "bin/python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        _pip(venv, "--upgrade", "pip")
    _pip(BENCH / "fabricpc", "fabricpc", *JAX_PIN)
    _pip(BENCH / "pcx", "pcx", "optax")
    _pip(BENCH / "pcx", *JAX_PIN, "equinox>=0.13")  # override pcx's jax<0.5 pin
    src = BENCH / "jpc-src"
    if not (src / "pyproject.toml").exists():
        sys.exit(f"JPC source missing: put a snapshot of github.com/thebuckleylab/jpc in {src}")
    _pip(BENCH / "jpc", *JAX_PIN, "equinox", "diffrax", "jaxtyping", "optax")
    _pip(BENCH / "jpc", "--no-deps", str(src))
    utils = _site(BENCH / "jpc") / "jpc" / "_utils.py"
    text = utils.read_text()
    old = "from jaxlib.xla_extension import PjitFunction\n"
    if old in text:
        new = ("try:  # jax >= 0.6 moved it (pcmusic bench patch)\n    " + old
               + "except ImportError:\n    from jaxlib._jax import PjitFunction\n")
        utils.write_text(text.replace(old, new))


def _site(venv: pathlib.Path) -> pathlib.Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def run_one(name: str, widths: tuple, batch: int, n_repeats: int) -> dict:
    python, code = LIBRARIES[name]
    if not pathlib.Path(python).exists():
        return {"library": name, "error": f"no venv at {python}: run with --setup"}
    proc = subprocess.run([str(python), "-c", code, json.dumps(widths), str(batch), str(n_repeats)],
                          capture_output=True, text=True, cwd=ROOT, timeout=1800,
                          env={**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")})
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    return {"library": name, "error": f"exit {proc.returncode}: {tail[:200]}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setup", action="store_true", help="build the anchor venvs and exit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--wide", action="store_true", help="also time the 4096x4 net (batch --wide-batch)")
    parser.add_argument("--wide-batch", type=int, default=256)
    args = parser.parse_args()
    if args.setup:
        setup()
        return
    sys.path.insert(0, str(ROOT))
    from pcmusic.bench.table import format_table, machine_description

    nets = [("784-512-512-10", (784, 512, 512, 10), 256)]
    if args.wide:
        nets.append(("4096x4", (4096,) * 4, args.wide_batch))
    results = {}
    for net, widths, batch in nets:
        best: dict[str, dict] = {}
        for _ in range(args.rounds):
            for name in LIBRARIES:
                r = run_one(name, widths, batch, args.repeats if net.startswith("784") else 3)
                old = best.get(name)
                if old is None or ("error" in old and "error" not in r) or (
                        "error" not in r and r["ms_median"] < old["ms_median"]):
                    best[name] = r
        results[net] = best
        base = best["pcmusic"].get("ms_median", float("nan"))
        rows = []
        for name, r in best.items():
            if "error" in r:
                rows.append({"library": name, "version": "", "ms/step (median)": float("nan"),
                             "ms/step (min)": float("nan"), "vs pcmusic": "", "note": r["error"]})
                continue
            rows.append({"library": name, "version": r["version"], "jax": r["jax"],
                         "ms/step (median)": r["ms_median"], "ms/step (min)": r["ms_min"],
                         "vs pcmusic": f"{r['ms_median'] / base:.2f}x", "note": NOTES.get(name, "")})
        title = (f"PC train step, {net}, batch {batch}, T=20 SGD + 1 Adam; best of {args.rounds} "
                 f"rounds; {machine_description()}")
        print(format_table(title, rows), flush=True)
    (BENCH / "compare_pc.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
