"""The wheel ships every module, the configs a user names (`--config tiny`) and the
built-in models (`--ckpt builtin:tiny`)."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pcmusic.errors import ConfigError
from pcmusic.training.config import config_path, load_config, shipped_configs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                          "-q", "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return zipfile.ZipFile(next(out.glob("pcmusic-*.whl")))


def test_wheel_holds_every_module_and_the_configs(wheel):
    names = set(wheel.namelist())
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "pcmusic").rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    configs = {f"pcmusic/configs/{p.name}" for p in (ROOT / "configs").glob("*.toml")}
    assert {"pcmusic/configs/tiny.toml", "pcmusic/configs/default.toml"} <= configs <= names


def test_wheel_holds_the_builtin_models(wheel):
    """Every file of pcmusic/builtin/NAME/ (checkpoint and note prior) is package data."""
    names = set(wheel.namelist())
    shipped = {str(p.relative_to(ROOT)) for p in (ROOT / "pcmusic" / "builtin").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert {"pcmusic/builtin/tiny/notes.npz", "pcmusic/builtin/__init__.py"} <= shipped
    assert any(name.startswith("pcmusic/builtin/tiny/checkpoints/") for name in shipped)
    assert shipped <= names, sorted(shipped - names)


def test_configs_by_name_and_by_path():
    assert {"tiny", "default"} <= set(shipped_configs())
    assert load_config("tiny") == load_config(ROOT / "configs" / "tiny.toml")
    assert config_path("runs/x.toml") == Path("runs/x.toml")    # a path stays a path
    with pytest.raises(ConfigError, match="tiny"):
        config_path("tinny")
