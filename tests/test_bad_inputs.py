"""A corpus of bad inputs: each one ends in exit code 2, one error line naming the file and the field, and no
output folder or files; plus the output-folder lock, files planted in ``.partial`` and a fuzz of ``parse_spec``.

The jobs are the tiny ones of ``test_jobs_support`` (32x32, the stand-in prior ``gaussian_test``), so the whole
corpus runs in seconds: every case fails before any sampling.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medrecon.cli import main
from medrecon.errors import MedreconError
from medrecon.jobs.lock import LOCK_NAME, OutputLock
from medrecon.jobs.registry import REGISTRY
from medrecon.jobs.spec import load_spec, parse_spec
from medrecon.priors.checkpoint import DEFAULT_DIR
from tests.test_jobs_support import mri_job_text, stand_in_registered, write_tiny_fastmri


def ct_job_text(out: Path, extra: str = "") -> str:
    """A tiny parallel-beam CT job on a simulated 32x32 phantom slice with the stand-in prior."""
    return (
        textwrap.dedent(f"""\
        [data]
        kind = "ct_phantom"
        size = 32
        slices = 1

        [operator]
        kind = "parallel_beam_ct"
        views = 8

        [prior]
        kind = "gaussian_test"

        [sampler]
        kind = "dds"
        steps = 3
        cg_iters = 2

        [run]
        batch_size = 1
        outputs = ["hdf5"]
        out = "{out}"
        """)
        + extra
    )


@pytest.fixture()
def env(tmp_path):
    """``{"mri", "ct", "plain": job files, "data": file, "out": folder, "tmp": tmp_path}``, stand-in prior
    registered."""
    data = write_tiny_fastmri(tmp_path / "vol.h5")
    out = tmp_path / "out"
    mri = tmp_path / "mri_job.toml"
    mri.write_text(mri_job_text(data, out))
    ct = tmp_path / "ct_job.toml"
    ct.write_text(ct_job_text(out))
    plain = tmp_path / "plain_job.toml"  # the MRI job without DDS-only options (for other samplers' cases)
    plain.write_text(mri_job_text(data, out).replace("cg_iters = 3\n", ""))
    with stand_in_registered():
        yield {"mri": mri, "ct": ct, "plain": plain, "data": data, "out": out, "tmp": tmp_path}


def one_line_failure(capsys, argv: list[str], out: Path, *needles: str) -> str:
    """Run the CLI in-process: exit code 2, exactly one stderr line holding ``needles``, ``out`` not created."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"medrecon {argv[0]}: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not out.exists(), sorted(out.rglob("*"))
    return err


# (job, overrides, field named in the message); the job file is named too (or the data file: "@data")
SET_CASES: list[tuple[str, list[str], str]] = [
    ("mri", ["run.scale=inf"], "run.scale"),
    ("mri", ["run.scale=-inf"], "run.scale"),
    ("mri", ["run.scale=nan"], "run.scale"),
    ("mri", ["run.scale=0"], "run.scale"),
    ("mri", ["run.scale=-1.5"], "run.scale"),
    ("mri", ["run.sigma_y=nan"], "run.sigma_y"),
    ("mri", ["run.sigma_y=inf"], "run.sigma_y"),
    ("mri", ["run.sigma_y=-0.1"], "run.sigma_y"),
    ("mri", ['run.sigma_y="often"'], "run.sigma_y"),
    ("mri", ["run.batch_size=0"], "run.batch_size"),
    ("mri", ["run.checkpoint_every=-1"], "run.checkpoint_every"),
    ("mri", ["run.seed=-3"], "run.seed"),
    ("mri", ['run.outputs=["jpeg"]'], "run.outputs"),
    ("mri", ['run.outputs=["dicom"]'], "run.outputs"),
    ("mri", ['run.device="tpu"'], "run.device"),
    ("mri", ['run.out=""'], "run.out"),
    ("mri", ["run.colour=1"], "run.colour"),
    ("mri", ['run.baselines=["nope"]'], "baseline.kind"),
    ("mri", ["sampler.gamma=-1"], "sampler.gamma"),
    ("mri", ["sampler.gamma=nan"], "sampler.gamma"),
    ("mri", ["sampler.eta=1.5"], "sampler.eta"),
    ("mri", ["sampler.eta=-0.1"], "sampler.eta"),
    ("mri", ["sampler.eta=inf"], "sampler.eta"),
    ("mri", ["sampler.lam=0"], "sampler.lam"),
    ("mri", ["sampler.lam=-2"], "sampler.lam"),
    ("mri", ["sampler.lam=inf"], "sampler.lam"),
    ("mri", ["sampler.steps=0"], "sampler.steps"),
    ("mri", ["sampler.cg_iters=0"], "sampler.cg_iters"),
    ("mri", ["sampler.step=3"], "sampler.step"),
    ("mri", ["sampler.kind=dps"], "sampler.cg_iters"),  # the file's DDS option is unknown to DPS
    ("plain", ["sampler.kind=dps", "sampler.zeta=-1"], "sampler.zeta"),
    ("plain", ["sampler.kind=mcg", "sampler.zeta=nan"], "sampler.zeta"),
    ("plain", ["sampler.kind=red_diff", "sampler.lr=0"], "sampler.lr"),
    ("plain", ["sampler.kind=score_pc", "sampler.snr=-0.1"], "sampler.snr"),
    ("plain", ["sampler.kind=ddim_projection", "sampler.eta=2"], "sampler.eta"),
    ("mri", ["operator.acceleration=0.5"], "operator.acceleration"),
    ("mri", ["operator.acceleration=nan"], "operator.acceleration"),
    ("mri", ["operator.center_fraction=0"], "operator.center_fraction"),
    ("mri", ["operator.center_fraction=1.5"], "operator.center_fraction"),
    ("mri", ["operator.espirit_kernel=0"], "operator.espirit_kernel"),
    ("mri", ["operator.coils=0"], "operator.coils"),
    ("mri", ["operator.calib_width=0"], "operator.calib_width"),
    ("mri", ['prior.kind="default"', 'prior.modality="ct"'], "prior.modality"),
    ("mri", ['run.baselines=["cg_sense"]', "baseline.cg_sense.damping=-1"], "baseline.damping"),
    ("mri", ['run.baselines=["l1_wavelet"]', "baseline.l1_wavelet.iters=0"], "baseline.iters"),
    ("mri", ["baseline.tv.iters=3"], "baseline.tv"),
    ("mri", ["data.slices=[7]"], "@data[slices]"),
    ("mri", ["data.slices=[]"], "@data[slices]"),
    ("mri", ['data.sha256="00"'], "@data[sha256]"),
    ("ct", ["operator.views=0"], "operator.views"),
    ("ct", ["operator.views=-4"], "operator.views"),
    ("ct", ["operator.kind=fan_beam_ct", "operator.views=0"], "operator.views"),
    ("ct", ["operator.noise=-0.5"], "operator.noise"),
    ("ct", ["operator.noise=nan"], "operator.noise"),
    ("ct", ["operator.noise=inf"], "operator.noise"),
    ("ct", ["operator.arc_deg=0"], "operator.arc_deg"),
    ("ct", ["operator.kind=fan_beam_ct", "operator.source_distance=-1"], "operator.source_distance"),
    ("ct", ["operator.kind=fan_beam_ct", "operator.detector_distance=inf"], "operator.detector_distance"),
    ("ct", ["operator.kind=multicoil_mri"], "operator.views"),  # a CT option the MRI operator lacks
    ("ct", ['prior.kind="default"', 'prior.modality="mri"'], "prior.modality"),
    ("ct", ["data.size=4"], "data.size"),
    ("ct", ["data.slices=0"], "data.slices"),
    ("ct", ["run.scale=inf"], "run.scale"),
    ("ct", ["sampler.gamma=-1"], "sampler.gamma"),
]


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize(
    "job, overrides, field", SET_CASES, ids=[f"{j}:{' '.join(o)}" for j, o, _f in SET_CASES]
)
def test_bad_value(env, capsys, command, job, overrides, field):
    argv = [command, str(env[job])]
    for text in overrides:
        argv += ["--set", text]
    if field.startswith("@data"):
        needles = [str(env["data"]), field[len("@data"):]]
    else:
        needles = [str(env[job]), field]
    one_line_failure(capsys, argv, env["out"], *needles)


def _sidecar_copy(tmp: Path, modality: str, **changes) -> Path:
    """A copy of the shipped ``modality`` prior (sidecar + weights) in ``tmp/prior`` with sidecar ``changes``."""
    folder = tmp / "prior"
    folder.mkdir(exist_ok=True)
    meta = json.loads((DEFAULT_DIR / f"{modality}.json").read_text())
    weights = folder / meta["weights"]
    if not weights.exists():
        os.symlink(DEFAULT_DIR / meta["weights"], weights)
    meta.update(changes)
    sidecar = folder / f"{modality}.json"
    sidecar.write_text(json.dumps(meta))
    return sidecar


# (name, how the job or its inputs are spoiled -> (command line, out folder, needles))
def _binary_job(env):
    job = env["tmp"] / "binary.toml"
    job.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00garbage")
    return ["check", str(job)], [str(job), "UTF-8"]


def _latin1_job(env):
    job = env["tmp"] / "latin1.toml"
    job.write_bytes(env["mri"].read_text().replace("[run]", "# caf\xe9\n[run]").encode("latin-1"))
    return ["run", str(job)], [str(job), "UTF-8"]


def _invalid_toml(env):
    job = env["tmp"] / "broken.toml"
    job.write_text(env["mri"].read_text().replace("steps = 6", "steps = = 6"))
    return ["run", str(job)], [str(job), "invalid TOML"]


def _missing_job(env):
    job = env["tmp"] / "absent.toml"
    return ["check", str(job)], [str(job), "job file not found"]


def _unknown_section(env):
    job = env["mri"]
    job.write_text(job.read_text() + "\n[runn]\nseed = 1\n")
    return ["run", str(job)], [str(job), "[runn]", "did you mean 'run'"]


def _section_not_table(env):
    job = env["tmp"] / "flat.toml"
    job.write_text('data = "vol.h5"\n')
    return ["check", str(job)], [str(job), "[data]"]


def _nan_in_file(env):
    job = env["mri"]
    job.write_text(job.read_text().replace("seed = 7", "seed = 7\nscale = nan"))
    return ["run", str(job)], [str(job), "run.scale"]


def _weights_outside(env):
    sidecar = _sidecar_copy(env["tmp"], "mri", weights="../../x.safetensors")
    return ["run", str(env["mri"]), "--set", 'prior.kind="checkpoint"', "--set", f'prior.path="{sidecar}"'], [
        str(sidecar),
        "[weights]",
        "outside",
    ]


def _weights_absolute(env):
    sidecar = _sidecar_copy(env["tmp"], "mri", weights=str(DEFAULT_DIR / "mri.safetensors"))
    return ["check", str(env["mri"]), "--set", 'prior.kind="checkpoint"', "--set", f'prior.path="{sidecar}"'], [
        str(sidecar),
        "[weights]",
    ]


def _mri_prior_on_ct(env):
    sidecar = _sidecar_copy(env["tmp"], "mri")
    return ["run", str(env["ct"]), "--set", 'prior.kind="checkpoint"', "--set", f'prior.path="{sidecar}"'], [
        str(sidecar),
        "[modality]",
    ]


def _ct_prior_on_mri(env):
    sidecar = _sidecar_copy(env["tmp"], "ct")
    return ["check", str(env["mri"]), "--set", 'prior.kind="checkpoint"', "--set", f'prior.path="{sidecar}"'], [
        str(sidecar),
        "[modality]",
    ]


def _real_prior_on_mri(env):
    sidecar = _sidecar_copy(env["tmp"], "mri", complex=False)
    return ["run", str(env["mri"]), "--set", 'prior.kind="checkpoint"', "--set", f'prior.path="{sidecar}"'], [
        str(sidecar),
        "[complex]",
    ]


def _pickle_prior(env):
    path = env["tmp"] / "net.pt"
    torch.save({"w": torch.zeros(1)}, path)
    return ["run", str(env["mri"]), "--set", 'prior.kind="checkpoint"', "--set", f'prior.path="{path}"'], [
        str(path),
        "pickled",
    ]


FILE_CASES = {
    f.__name__.strip("_"): f
    for f in (
        _binary_job,
        _latin1_job,
        _invalid_toml,
        _missing_job,
        _unknown_section,
        _section_not_table,
        _nan_in_file,
        _weights_outside,
        _weights_absolute,
        _mri_prior_on_ct,
        _ct_prior_on_mri,
        _real_prior_on_mri,
        _pickle_prior,
    )
}


@pytest.mark.parametrize("name", list(FILE_CASES))
def test_bad_file(env, capsys, name):
    argv, needles = FILE_CASES[name](env)
    one_line_failure(capsys, argv, env["out"], *needles)


def test_the_corpus_is_large():
    assert 2 * len(SET_CASES) + len(FILE_CASES) >= 40


# ------------------------------------------------------------------------------------ the output-folder lock


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_run_on_a_locked_folder_fails_and_leaves_it_alone(env, capsys):
    out = env["out"]
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK_NAME).write_text(f"{holder.pid}\n")
        code = main(["run", str(env["mri"]), "--quiet"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert str(out / LOCK_NAME) in err and f"pid {holder.pid}" in err and "[pid]" in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
        assert (out / LOCK_NAME).read_text().strip() == str(holder.pid)
        assert main(["check", str(env["mri"])]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"pid {holder.pid}" in err, err
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_is_taken_over_and_the_lock_is_removed_at_the_end(env, capsys):
    out = env["out"]
    out.mkdir()
    (out / LOCK_NAME).write_text(f"{_dead_pid()}\n")
    assert main(["run", str(env["mri"]), "--quiet"]) == 0
    assert (out / "record.json").is_file() and not (out / LOCK_NAME).exists()
    assert not list(out.glob(f"{LOCK_NAME}*"))


def test_the_lock_is_exclusive_within_a_process_and_released_on_failure(tmp_path):
    with OutputLock(tmp_path) as lock:
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(MedreconError, match="in use by another medrecon run"):
            OutputLock(tmp_path).acquire()
        assert lock.held
    assert not (tmp_path / LOCK_NAME).exists()
    with pytest.raises(RuntimeError), OutputLock(tmp_path):
        raise RuntimeError("the job failed")
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_failed_run_releases_the_lock(env):
    from medrecon.jobs.run import run_job

    spec = load_spec(env["mri"])

    def stop(chunk, state):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        run_job(spec, progress=False, callback=stop)
    assert not (env["out"] / LOCK_NAME).exists()


# ------------------------------------------------------------------------------- files planted in .partial


class _Planted:
    """Unpickling this would create ``marker`` (weights-only loading must refuse it)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _interrupted_run(env) -> Path:
    """Run the MRI job until the second chunk's first checkpoint, then stop; returns ``.partial``."""
    from medrecon.jobs.run import run_job

    spec = load_spec(env["mri"])

    def stop(chunk, state):
        if chunk == 1 and state.step >= 3:  # after the checkpoint of step 2
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        run_job(spec, progress=False, callback=stop)
    partial = env["out"] / ".partial"
    assert (partial / "slice_00000.pt").is_file()
    return partial


@pytest.mark.parametrize("target", ["slice", "state"])
def test_a_pickle_planted_in_partial_is_refused_as_one_line(env, capsys, target):
    partial = _interrupted_run(env)
    if target == "slice":
        planted = partial / "slice_00000.pt"
    else:
        (state,) = partial.glob("chunk_00001.state/*/state.pt")
        planted = state
    marker = env["tmp"] / "unpickled"
    torch.save(_Planted(marker), planted)
    before = sorted(p.relative_to(env["out"]) for p in env["out"].rglob("*") if p != planted)
    code = main(["run", str(env["mri"]), "--quiet", "--resume"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert str(planted) in err and "pickled" in err, err
    assert not marker.exists()
    after = sorted(p.relative_to(env["out"]) for p in env["out"].rglob("*") if p != planted)
    assert not (env["out"] / "record.json").exists() and not (env["out"] / LOCK_NAME).exists()
    assert set(after) <= set(before)


def test_a_truncated_slice_file_is_refused_as_one_line(env, capsys):
    partial = _interrupted_run(env)
    planted = partial / "slice_00001.pt"
    planted.write_bytes(planted.read_bytes()[:40])
    code = main(["run", str(env["mri"]), "--quiet", "--resume"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(planted) in err, err


# ----------------------------------------------------------------------------------------- parse_spec fuzz

_NAMES = sorted(
    {"kind", "path", "seed", "scale", "sigma_y", "out", "outputs", "baselines", "device", "batch_size"}
    | {name for section in ("data", "operator", "prior", "sampler", "baseline") for name in REGISTRY.names(section)}
    | {
        opt
        for section in ("data", "operator", "prior", "sampler", "baseline")
        for name in REGISTRY.names(section)
        for opt in REGISTRY.get(section, name).options
    }
)
_SECTIONS = ["data", "operator", "prior", "sampler", "run", "baseline"]
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(_NAMES)
    | st.text(max_size=12)
)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
_keys = st.sampled_from(_NAMES) | st.text(max_size=8)
_tables = st.dictionaries(
    st.sampled_from(_SECTIONS) | st.text(max_size=8),
    st.dictionaries(_keys, _values, max_size=6) | _values,
    max_size=7,
)
_overrides = st.lists(
    st.builds(
        lambda section, key, raw: f"{section}.{key}={raw}",
        st.sampled_from(_SECTIONS) | st.text(max_size=6),
        _keys,
        st.sampled_from(["1", "-1", "nan", "inf", "0.5", '"x"', "[1, 2]", "{a = 1}", "true", "[", "auto"])
        | st.text(max_size=10),
    ),
    max_size=3,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=_tables, overrides=_overrides)
def test_parse_spec_fuzz_only_raises_medrecon_errors(table, overrides):
    try:
        spec = parse_spec(table, overrides)
    except MedreconError as err:
        assert len(str(err).splitlines()) <= 1
        return
    spec.to_dict()
    assert len(spec.hash) == 64


@settings(max_examples=200, deadline=None)
@given(
    base=st.fixed_dictionaries(
        {
            "data": st.just({"kind": "fastmri", "path": "/data/file.h5"}),
            "operator": st.just({"kind": "multicoil_mri"}),
            "prior": st.just({"kind": "default"}),
            "sampler": st.sampled_from(["dds", "dps", "mcg", "red_diff", "score_pc", "ddim_projection"]).map(
                lambda k: {"kind": k}
            ),
        }
    ),
    section=st.sampled_from(["operator", "sampler", "run"]),
    key=_keys,
    value=_values,
)
def test_parse_spec_fuzz_valid_jobs_with_one_bad_value(base, section, key, value):
    table = {**base, section: {**base.get(section, {}), key: value}}
    try:
        parse_spec(table)
    except MedreconError as err:
        assert len(str(err).splitlines()) <= 1

