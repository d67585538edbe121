"""Bad data found before compute: DICOM geometry and rescale tags, non-ASCII names written with their character
set, NaN weights in a prior named by the prior's file."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from medrecon.errors import InputError
from medrecon.files import sha256_file
from medrecon.io.dicom import read_dicom_series, write_dicom_series
from tests.test_dicom_io import _edit, _synthetic

pydicom = pytest.importorskip("pydicom")


@pytest.mark.parametrize("edit, field", [
    (lambda ds: setattr(ds, "ImagePositionPatient", ["1.0", "2.0"]), "ImagePositionPatient"),
    (lambda ds: setattr(ds, "RescaleSlope", "0"), "RescaleSlope"),
])
def test_dicom_geometry_and_rescale_are_checked(tmp_path, edit, field):
    _, files = _synthetic(tmp_path / "s", depth=3)
    _edit(files[0], edit)
    with pytest.raises(InputError) as info:
        read_dicom_series(tmp_path / "s")
    assert info.value.field == field and files[0].name in str(info.value)


def test_a_non_ascii_patient_name_is_written_with_its_character_set(tmp_path):
    _, files = _synthetic(tmp_path / "s", depth=2)
    for f in files:
        _edit(f, lambda ds: (setattr(ds, "SpecificCharacterSet", "ISO_IR 192"),
                             setattr(ds, "PatientName", "Müller^Jürgen")))
    series = read_dicom_series(tmp_path / "s")
    written = write_dicom_series(tmp_path / "out", series.hu, source=series)
    ds = pydicom.dcmread(written[0])
    assert ds.SpecificCharacterSet == "ISO_IR 192" and str(ds.PatientName) == "Müller^Jürgen"


def test_nan_weights_in_a_prior_are_named_by_its_weights_file(tmp_path):
    from safetensors.torch import load_file, save_file

    from medrecon.priors.checkpoint import load_prior

    from medrecon.priors.checkpoint import DEFAULT_DIR as default

    folder = tmp_path / "prior"
    folder.mkdir()
    shutil.copy(default / "mri.json", folder / "mri.json")
    state = load_file(str(default / "mri.safetensors"))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name].clone()
    state[name].view(-1)[0] = float("nan")
    save_file(state, str(folder / "mri.safetensors"))
    meta = json.loads((folder / "mri.json").read_text())
    meta["weights"] = "mri.safetensors"
    meta["weights_sha256"] = sha256_file(folder / "mri.safetensors")
    (folder / "mri.json").write_text(json.dumps(meta))
    with pytest.raises(InputError) as info:
        load_prior(folder / "mri.json")
    assert info.value.field == "weights" and "mri.safetensors" in str(info.value) and name in str(info.value)
    assert torch.isnan(state[name]).any()


@pytest.mark.parametrize("baseline", ["tv", "fbp"])
def test_a_baseline_of_the_other_modality_is_refused_before_compute(tmp_path, baseline):
    from medrecon.errors import ConfigError
    from medrecon.jobs.run import run_job
    from medrecon.jobs.spec import load_spec
    from tests.test_jobs_support import mri_job_text, stand_in_registered, write_tiny_fastmri

    job = tmp_path / "job.toml"
    job.write_text(mri_job_text(write_tiny_fastmri(tmp_path / "vol.h5"), tmp_path / "out"))
    with stand_in_registered(), pytest.raises(ConfigError, match=rf"run\.baselines: '{baseline}' is a CT baseline"):
        run_job(load_spec(job, [f'run.baselines=["{baseline}"]']), progress=False)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("position", [0, 2, 4])
@pytest.mark.parametrize("keep", [400, 900])
def test_a_truncated_header_anywhere_in_a_series_names_that_file(tmp_path, position, keep):
    """First, middle and last file cut inside the header: the error names the cut file, never a neighbour."""
    _, files = _synthetic(tmp_path / "s", depth=5)
    target = sorted(files)[position]
    target.write_bytes(target.read_bytes()[:keep])
    with pytest.raises(InputError) as info:
        read_dicom_series(tmp_path / "s")
    assert target.name in str(info.value)
