"""Job specs and the registry: TOML/YAML, --set overrides, schema from signatures, clear ConfigErrors."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Literal

import pytest

from medrecon.defaults import COIL_MAPS, DDS
from medrecon.errors import ConfigError, InputError
from medrecon.jobs.registry import REGISTRY, Registry, check_value
from medrecon.jobs.spec import RunOptions, load_spec, parse_override, parse_spec

CONFIGS = Path(__file__).resolve().parents[1] / "medrecon" / "configs"

BASE = {
    "data": {"kind": "fastmri", "path": "/data/file.h5"},
    "operator": {"kind": "multicoil_mri"},
    "prior": {"kind": "default"},
    "sampler": {"kind": "dds"},
}


def test_defaults_are_filled_from_signatures():
    spec = parse_spec(BASE)
    assert spec.operator.options == {
        "mask": "equispaced",
        "mask_file": None,
        "acceleration": 4.0,
        "center_fraction": 0.08,
        "coil_maps": COIL_MAPS.method,
        "calib_width": None,
        "calib_height": COIL_MAPS.calib_height,
        "espirit_kernel": 6,
        "readout_crop": True,
        "coils": None,
    }
    assert spec.sampler.options == {"steps": None, "eta": None, "cg_iters": DDS.cg_iters, "lam": None,
                                    "gamma": None, "grid": "karras", "clip": None, "start": None,
                                    "start_sigma": None, "chains": None}  # None: the prior modality's default
    assert spec.run == RunOptions()


def test_hash_ignores_layout_but_not_values():
    explicit = {**BASE, "sampler": {"kind": "dds", "cg_iters": 5, "grid": "karras"}}
    assert parse_spec(BASE).hash == parse_spec(explicit).hash
    assert parse_spec(BASE).hash != parse_spec(BASE, ["sampler.steps=49"]).hash


@pytest.mark.parametrize(
    "text, expected",
    [
        ("sampler.steps=20", (["sampler", "steps"], 20)),
        ("sampler.eta=0.5", (["sampler", "eta"], 0.5)),
        ("operator.mask=random", (["operator", "mask"], "random")),
        ('operator.mask="random"', (["operator", "mask"], "random")),
        ("run.baselines=['zero_filled', 'cg_sense']", (["run", "baselines"], ["zero_filled", "cg_sense"])),
        ("data.slices=[0, 2]", (["data", "slices"], [0, 2])),
        ("baseline.cg_sense.iters=5", (["baseline", "cg_sense", "iters"], 5)),
        ('run.outputs = ["png"]', (["run", "outputs"], ["png"])),
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["steps=3", "sampler.=3", "nothing"])
def test_bad_override_syntax(text):
    with pytest.raises(ConfigError, match="--set"):
        parse_override(text)


def test_overrides_are_type_checked_after_parsing():
    spec = parse_spec(BASE, ["operator.acceleration=8", "operator.center_fraction=0.04", "data.slices=[1]"])
    assert spec.operator.options["acceleration"] == 8.0 and isinstance(
        spec.operator.options["acceleration"], float
    )
    assert spec.data.options["slices"] == [1]


@pytest.mark.parametrize(
    "override, needles",
    [
        (
            ["sampler.stepz=3"],
            ["unknown key sampler.stepz", "did you mean 'steps'", "allowed keys: steps, eta"],
        ),
        (["run.batchsize=3"], ["unknown key run.batchsize", "did you mean 'batch_size'"]),
        (["samplr.steps=3"], ["unknown section [samplr]", "did you mean 'sampler'"]),
        (["sampler.kind=ddim_projektion"], ["'ddim_projektion'", "did you mean 'ddim_projection'"]),
        (["sampler.steps=2.5"], ["sampler.steps = 2.5", "expected int"]),
        (["sampler.steps=true"], ["sampler.steps = True", "expected int"]),
        (["sampler.eta='high'"], ["sampler.eta = 'high'", "expected float"]),
        (["operator.coil_maps='espirt'"], ["did you mean 'espirit'"]),
        (["data.slices=[0, 'a']"], ["data.slices"]),
        (["run.outputs=['tiff']"], ["run.outputs[0] = 'tiff'", "'hdf5', 'nifti', 'dicom', 'png'"]),
        (["run.batch_size=0"], ["run.batch_size = 0", "at least 1"]),
        (["run.baselines=['l1_wavlet']"], ["'l1_wavlet'", "did you mean 'l1_wavelet'"]),
        (
            ["baseline.cg_sense.iters=3"],
            ["[baseline.cg_sense] is set but 'cg_sense' is not in run.baselines"],
        ),
        (
            ["run.baselines=['cg_sense']", "baseline.cg_sense.iter=3"],
            ["unknown key baseline.iter", "did you mean 'iters'"],
        ),
    ],
)
def test_config_errors_name_the_key(override, needles):
    with pytest.raises(ConfigError) as err:
        parse_spec(BASE, override)
    for needle in needles:
        assert needle in str(err.value)


def test_missing_required_key_and_kind():
    with pytest.raises(ConfigError, match="missing key data.path"):
        parse_spec({**BASE, "data": {"kind": "fastmri"}})
    with pytest.raises(ConfigError, match="missing sampler.kind; allowed: dds, ddim_projection"):
        parse_spec({k: v for k, v in BASE.items() if k != "sampler"})


def test_relative_data_path_resolves_against_the_job_file(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    job = tmp_path / "sub" / "job.toml"
    job.write_text(
        textwrap.dedent("""\
        [data]
        kind = "fastmri"
        path = "../vol.h5"
        [operator]
        kind = "multicoil_mri"
        [prior]
        kind = "default"
        [sampler]
        kind = "dds"
        """)
    )
    assert load_spec(job).data.options["path"] == str(tmp_path / "vol.h5")
    monkeypatch.chdir(tmp_path / "sub")
    assert load_spec(job, ["data.path=here.h5"]).data.options["path"] == str(tmp_path / "sub" / "here.h5")


def test_yaml_and_toml_give_the_same_spec(tmp_path):
    pytest.importorskip("yaml")
    (tmp_path / "job.yaml").write_text(
        textwrap.dedent("""\
        data: {kind: fastmri, path: /data/file.h5}
        operator: {kind: multicoil_mri, acceleration: 8}
        prior: {kind: default}
        sampler: {kind: dds, steps: 20}
        run: {seed: 3}
        """)
    )
    toml = parse_spec(BASE, ["operator.acceleration=8", "sampler.steps=20", "run.seed=3"])
    assert load_spec(tmp_path / "job.yaml").hash == toml.hash


def test_unreadable_job_files(tmp_path):
    with pytest.raises(InputError, match="job file not found"):
        load_spec(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\nkind=")
    with pytest.raises(InputError, match="invalid TOML"):
        load_spec(bad)


def test_check_value_supports_the_hint_forms():
    assert check_value(3, float, "k") == 3.0
    assert check_value(None, int | None, "k") is None
    assert check_value([1, 2], list[int], "k") == [1, 2]
    assert check_value([1, 2], tuple[int, ...], "k") == (1, 2)
    assert check_value("a", Literal["a", "b"], "k") == "a"
    with pytest.raises(ConfigError, match="expected one of 'a', 'b'"):
        check_value("c", Literal["a", "b"], "k")
    with pytest.raises(ConfigError, match="expected bool"):
        check_value(1, bool, "k")


def test_registry_schema_comes_from_keyword_only_parameters():
    def build(context, *, size: int = 3, name: Literal["x", "y"] = "x", scale: float | None = None):
        """Summary line.

        More text."""
        return context

    registry = Registry({"data": {"thing": build}})
    comp = registry.get("data", "thing")
    assert list(comp.options) == ["size", "name", "scale"]
    assert comp.summary == "Summary line."
    assert comp.validate({"size": 4}) == {"size": 4, "name": "x", "scale": None}
    with pytest.raises(
        ConfigError, match="unknown data.kind = 'thin' \\(did you mean 'thing'\\?\\); allowed: thing"
    ):
        registry.get("data", "thin")
    with pytest.raises(ValueError, match="already registered"):
        registry.add("data", "thing", build)


def test_every_registered_component_has_a_documented_typed_schema():
    for section in ("data", "operator", "prior", "sampler", "baseline"):
        for name in REGISTRY.names(section):
            comp = REGISTRY.get(section, name)
            assert comp.summary, f"{section}.{name} has no docstring"
            for opt in comp.options.values():
                assert opt.type is not None


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    spec = load_spec(path)
    # 50 network evaluations a slice in every shipped job (steps x chains: the CT jobs average 2 chains of 25); a
    # dehazing job separates two sources under two priors, which DDS cannot express, and runs the joint sampler of
    # the DDIM family instead (same count) and a CT volume job couples its slices with DDS's 3D variant
    family = {"joint_dehazing"} if spec.operator.kind == "ultrasound_haze" else {"dds", "dds_3d"}
    options = spec.sampler.options
    assert spec.sampler.kind in family and options["steps"] * (options.get("chains") or 1) == 50
