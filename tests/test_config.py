"""Config mechanism: TOML + overrides, round trips, and every error explaining itself."""
import dataclasses
import json
from typing import Literal

import pytest

from pcmusic.training.config import (Config, apply_overrides, config_diff, config_from_dict,
                            config_to_dict, config_to_toml, default_config, flatten_config,
                            load_config, require)
from pcmusic.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Inner:
    rate_hz: float = 100.0
    mode: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[int, str] = (0, "x")
    path: str | None = None
    flag: bool = False

    def __post_init__(self):
        require(self.rate_hz > 0, "rate_hz", f"must be > 0 Hz, got {self.rate_hz}")


@dataclasses.dataclass(frozen=True)
class Outer:
    inner: Inner = dataclasses.field(default_factory=Inner)
    n_steps: int = 10


def write(tmp_path, text, name="c.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_round_trip_dict_json_and_toml(tmp_path):
    cfg = apply_overrides(default_config(), ["model.latent_dims=[8, 8, 4]", "train.learning_rate=3e-4",
                                             'data.tuning="5-TET"'])
    d = config_to_dict(cfg)
    assert json.loads(json.dumps(d)) == d
    assert config_from_dict(Config, json.loads(json.dumps(d))) == cfg
    assert load_config(write(tmp_path, config_to_toml(cfg)), schema=Config) == cfg
    custom = Outer(Inner(rate_hz=3.5, mode="b", sizes=(), pair=(4, "y"), path="p", flag=True), 7)
    assert config_from_dict(Outer, json.loads(json.dumps(config_to_dict(custom)))) == custom


def test_toml_file_with_overrides_and_defaults(tmp_path):
    path = write(tmp_path, "n_steps = 5\n[inner]\nrate_hz = 2\nsizes = [3, 4, 5]\n")
    cfg = load_config(path, schema=Outer, overrides=["inner.mode=b", "inner.path=data/wavs",
                                                     "n_steps=6", "inner.flag=true"])
    # ints become floats, lists become tuples, unset keys keep their defaults
    assert cfg == Outer(Inner(rate_hz=2.0, mode="b", sizes=(3, 4, 5), path="data/wavs", flag=True), 6)
    assert isinstance(cfg.inner.rate_hz, float)
    assert apply_overrides(cfg, ["inner.path=none"]).inner.path is None
    assert apply_overrides(cfg, ["inner={mode = 'a'}"]).inner == dataclasses.replace(cfg.inner, mode="a")


def test_config_diff_lists_dotted_keys():
    a = default_config()
    b = apply_overrides(a, ["train.seed=3", "model.latent_dims=[1, 1, 1]"])
    assert config_diff(a, b) == ["model.latent_dims", "train.seed"]
    assert config_diff(a, config_to_dict(a)) == []
    assert config_diff({"x": {"y": 1}}, {"x": {"z": 1}}) == ["x.y", "x.z"]
    assert flatten_config(a)["train.seed"] == 0


def check_error(fn, *fragments):
    with pytest.raises(ConfigError) as info:
        fn()
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    return str(info.value)


def test_unknown_key_in_file_names_file_and_suggests(tmp_path):
    path = write(tmp_path, "[inner]\nrate_hx = 3.0\n")
    check_error(lambda: load_config(path, schema=Outer), "inner.rate_hx", str(path),
                "did you mean 'inner.rate_hz'", "rate_hz, mode, sizes")


def test_unknown_key_in_override_names_override():
    check_error(lambda: apply_overrides(default_config(), ["trian.seed=1"]),
                "'trian'", "--set trian.seed=1", "did you mean 'train'", "model, data, train")


@pytest.mark.parametrize("override, fragments", [
    ("n_steps=1.5", ["n_steps = 1.5", "expected int"]),
    ("n_steps=1e3", ["expected int (write 1000)"]),
    ("n_steps=true", ["expected int"]),
    ("inner.rate_hz=fast", ["inner.rate_hz = 'fast'", "expected float"]),
    ("inner.flag=1", ["expected true or false"]),
    ("inner.sizes=3", ["inner.sizes", "expected a list"]),
    ("inner.sizes=[1, 'x']", ["inner.sizes[1] = 'x'", "expected int"]),
    ("inner.pair=[1]", ["inner.pair", "a list of 2 items"]),
    ("inner.mode=c", ["inner.mode = 'c'", "one of 'a', 'b'"]),
    ("inner=3", ["inner = 3", "a table"]),
    ("inner.rate_hz=nan", ["not nan"]),
])
def test_wrong_types_name_key_value_and_expected(override, fragments):
    check_error(lambda: apply_overrides(Outer(), [override]), f"--set {override}", *fragments)


@pytest.mark.parametrize("override, fragment", [
    ("n_steps", "write --set section.key=value"),
    ("=3", "write --set section.key=value"),
    ("inner..mode=a", "write --set section.key=value"),
    ("inner.sizes=[1, 2", "not valid TOML"),
    ("inner.mode='a", "not valid TOML"),
    ("n_steps.x=1", "'n_steps' is a value, not a section"),
])
def test_bad_override_syntax(override, fragment):
    check_error(lambda: apply_overrides(Outer(), [override]), override, fragment)


def test_post_init_validation_names_key_and_source(tmp_path):
    path = write(tmp_path, "[inner]\nrate_hz = -1\n")
    check_error(lambda: load_config(path, schema=Outer), "inner.rate_hz", str(path), "must be > 0")
    check_error(lambda: apply_overrides(default_config(), ["data.sample_rate=8000"]),
                "data.sample_rate", "--set data.sample_rate=8000", "unknown key")
    check_error(lambda: apply_overrides(default_config(), ["data.kind=folder"]),
                "data.folder", "needs a folder")


def test_file_errors(tmp_path):
    check_error(lambda: load_config(tmp_path / "nope.toml"), "nope.toml", "does not exist")
    bad = write(tmp_path, "[model\n")
    check_error(lambda: load_config(bad), str(bad), "not valid TOML")


def test_missing_required_key():
    @dataclasses.dataclass(frozen=True)
    class Needs:
        n_steps: int

    check_error(lambda: config_from_dict(Needs, {}, source="x.toml"), "missing key 'n_steps'", "x.toml")


def test_plain_errors_from_a_schema_get_the_section_and_source(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class Strict:
        n_voices: int = 1

        def __post_init__(self):
            if self.n_voices > 4:
                raise ValueError(f"n_voices = {self.n_voices} is more than 4 voices")

    @dataclasses.dataclass(frozen=True)
    class Top:
        synth: Strict = dataclasses.field(default_factory=Strict)

    check_error(lambda: load_config(write(tmp_path, "[synth]\nn_voices = 9\n"), schema=Top),
                "synth in file", "n_voices = 9 is more than 4")


def test_config_keys_lists_every_leaf_with_its_type_and_value():
    from pcmusic.configio import config_keys

    assert config_keys(Outer()) == [
        ("inner.rate_hz", "float", 100.0), ("inner.mode", "Literal['a', 'b']", "a"),
        ("inner.sizes", "tuple[int, ...]", (1, 2)), ("inner.pair", "tuple[int, str]", (0, "x")),
        ("inner.path", "str | None", None), ("inner.flag", "bool", False), ("n_steps", "int", 10)]
    assert [k for k, _, _ in config_keys(default_config())] == list(flatten_config(default_config()))


def run_cli(capsys, *argv):
    from pcmusic import cli

    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_config_show_prints_the_resolved_toml(capsys, tmp_path):
    from tests.test_train import TINY

    overrides = ["train.n_steps=3", "data.tuning=5-TET"]
    rc, out, err = run_cli(capsys, "config", "show", "--config", "tiny", *[f"--set={o}" for o in overrides])
    assert rc == 0, err
    assert load_config(write(tmp_path, out), schema=Config) == load_config(TINY, overrides=overrides)
    rc, out, err = run_cli(capsys, "config", "show")
    assert rc == 0 and load_config(write(tmp_path, out), schema=Config) == default_config()


def test_config_keys_values_read_back_through_set(capsys):
    """Every line is `key: type = value`, and --set key=value of every printed value
    rebuilds the config it was printed from: the listing is complete and exact."""
    from tests.test_train import TINY

    tiny = load_config(TINY)
    for name, cfg in ((None, default_config()), ("tiny", tiny)):
        rc, out, err = run_cli(capsys, "config", "keys", *(["--config", name] if name else []))
        assert rc == 0, err
        lines = out.splitlines()
        keys = [line.split(":")[0] for line in lines]
        assert keys == list(flatten_config(cfg))
        assert "train.n_steps: int = " in out and "data.folder: str | None = none" in out
        sets = [f"{line.split(':')[0]}={line.split(' = ', 1)[1]}" for line in lines]
        base = Config(model=dataclasses.replace(default_config().model, latent_dims=(2, 2, 2)))
        assert apply_overrides(base, sets) == cfg


@pytest.mark.parametrize("argv, fragment", [
    (["config", "show", "--set", "train.n_step=3"], "did you mean 'train.n_steps'"),
    (["config", "keys", "--config", "nonesuch"], "neither a file nor a shipped config"),
    (["config", "show", "--set", "train.n_steps=many"], "expected int"),
])
def test_config_bad_input_is_one_line(capsys, argv, fragment):
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("pcmusic config: error: ") and fragment in err
