"""Load an experiments/ script as a module and run it once with --quick (test helper)."""
import importlib.util
import json
import sys
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def load_script(name: str):
    """experiments/<name>.py as the module `experiment_<name>`."""
    spec = importlib.util.spec_from_file_location(f"experiment_{name}", EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


def run_quick(name: str, tmp_path_factory):
    """(script module, out dir, results.json as a dict) of one `--quick` run."""
    out = tmp_path_factory.mktemp(name)
    script = load_script(name)
    script.main(["--quick", "--out", str(out)])
    return script, out, json.loads((out / "results.json").read_text())
