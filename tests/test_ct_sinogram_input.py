"""Measured CT sinograms as job input: the file formats (HDF5, .npy + sidecar), jobs run from them end to end
(the same results as the simulated path on the same phantom), FBP on a measured short fan-beam scan, and one-line
errors for bad files before any compute."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from medrecon.cli import main as cli_main
from medrecon.errors import ConfigError, InputError
from medrecon.io.sinogram import read_sinogram, write_sinogram
from medrecon.jobs.components import hu_to_mu, shepp_logan_volume
from medrecon.jobs.run import prepare_job, run_job
from medrecon.jobs.spec import load_spec
from operators import fan_beam, parallel_beam, sparse_view_angles
from tests.test_jobs_support import stand_in_registered

SIZE, SLICES, VIEWS = 32, 3, 8


@pytest.fixture(autouse=True)
def _stand_in():
    with stand_in_registered():
        yield


def job_text(out: Path, data: str, operator: str, baselines: str = "[]") -> str:
    return textwrap.dedent(f"""\
        [data]
        {data}

        [operator]
        {operator}

        [prior]
        kind = "gaussian_test"

        [sampler]
        kind = "dds"
        steps = 3
        gamma = 0.0

        [run]
        sigma_y = 0.0
        scale = 0.0384
        batch_size = 2
        baselines = {baselines}
        outputs = ["hdf5"]
        out = "{out}"
        """)


def phantom_hu() -> np.ndarray:
    return shepp_logan_volume(SIZE, SLICES)


def parallel_scan(path: Path, **kwargs) -> list[Path]:
    """The 8-view parallel-beam sinograms of the 3D Shepp-Logan phantom (the simulated job's operator)."""
    op = parallel_beam(SIZE, sparse_view_angles(VIEWS))
    hu = phantom_hu()
    with torch.no_grad():
        y = op(torch.from_numpy(hu_to_mu(hu)))
    return write_sinogram(path, y, op.geometry, reference=hu, reference_units="hu", **kwargs)


def measured_job(tmp_path: Path, data: Path, operator: str = 'kind = "measured_ct"', name: str = "measured") -> Path:
    job = tmp_path / f"{name}.toml"
    job.write_text(job_text(tmp_path / name, f'kind = "sinogram"\npath = "{data}"', operator, '["fbp"]'))
    return job


def written_reconstruction(out: Path) -> np.ndarray:
    """The one HDF5 reconstruction in ``out`` (named after an .h5 input, else reconstruction.h5)."""
    (path,) = (out / "reconstructions").glob("*.h5")
    with h5py.File(path) as hf:
        return hf["reconstruction"][()]


def test_files_round_trip_geometry_reference_and_noise(tmp_path):
    op = fan_beam((SIZE, SIZE + 2), (10.0, 50.0, 130.0), source_distance=80.0, detector_distance=150.0,
                  det_spacing=1.5, pixel_size=0.8, detector="flat", det_offset=0.3)
    y = torch.rand(2, 3, op.geometry.n_det, generator=torch.Generator().manual_seed(0))
    hu = np.full((2, SIZE, SIZE + 2), 40.0, dtype=np.float32)
    for suffix in (".h5", ".npy"):
        files = write_sinogram(tmp_path / f"scan{suffix}", y, op.geometry, reference=hu, reference_units="hu",
                               slice_spacing_mm=2.5, noise_std=0.01)
        read = read_sinogram(files[0])
        assert read.geometry == op.geometry
        np.testing.assert_array_equal(read.sinogram, y.numpy())
        np.testing.assert_allclose(read.reference, 0.0192 * 1.04, rtol=1e-6)  # HU -> 1/mm, medrecon.io.hu
        assert (read.slice_spacing_mm, read.noise_std, read.reference_units) == (2.5, 0.01, "hu")
        assert sorted(read.files) == sorted(files)


def test_measured_job_matches_the_simulated_job(tmp_path):
    simulated = tmp_path / "simulated.toml"
    simulated.write_text(job_text(tmp_path / "simulated",
                                  f'kind = "ct_phantom"\nphantom = "shepp_logan"\nsize = {SIZE}\nslices = {SLICES}',
                                  f'kind = "parallel_beam_ct"\nviews = {VIEWS}', '["fbp"]'))
    want = run_job(load_spec(simulated), progress=False)
    for suffix in (".h5", ".npy"):
        name = f"measured{suffix.replace('.', '_')}"
        files = parallel_scan(tmp_path / f"scan{suffix}")
        assert cli_main(["run", str(measured_job(tmp_path, files[0], name=name)), "--quiet"]) == 0
        got = written_reconstruction(tmp_path / name)
        np.testing.assert_allclose(got, want.reconstruction, atol=1e-5)
        record = json.loads((tmp_path / name / "record.json").read_text())
        assert record["acquisition"] == {"geometry": "parallel", "views": VIEWS, "arc_deg": 180.0}
        for method in ("dds", "fbp"):
            assert record["metrics"][method]["psnr"] == pytest.approx(want.metrics[method]["psnr"], abs=0.05)


def test_fbp_on_a_measured_short_fan_beam_scan(tmp_path):
    from medrecon.baselines.ct import fbp
    from medrecon.metrics import psnr

    source, detector = 60.0, 120.0
    half_fan = np.degrees(np.arcsin(0.5 * np.hypot(SIZE, SIZE) / source))
    arc = 180.0 + 2 * half_fan  # Parker's short scan
    views = int(np.ceil(arc))
    short = fan_beam(SIZE, sparse_view_angles(views, views), source, detector)
    full = fan_beam(SIZE, sparse_view_angles(360, 360), source, detector)
    mu = torch.from_numpy(hu_to_mu(phantom_hu()[1:2]))
    with torch.no_grad():
        y = short(mu)
        full_fbp = fbp(full(mu), full).numpy()
    data = write_sinogram(tmp_path / "short.h5", y, short.geometry, reference=mu, reference_units="mu")[0]
    job = measured_job(tmp_path, data)
    result = run_job(load_spec(job), progress=False)
    assert result.record["acquisition"] == {"geometry": "fan", "views": views, "arc_deg": float(views)}
    peak = float(mu.max())
    full_psnr = psnr(mu.numpy(), full_fbp, peak)
    assert result.metrics["fbp"]["psnr"] > full_psnr - 1.5  # the short scan reconstructs about as well
    assert full_psnr > 25.0


def test_view_stride_keeps_every_kth_measured_view(tmp_path):
    data = parallel_scan(tmp_path / "scan.h5")[0]
    job = prepare_job(load_spec(measured_job(tmp_path, data, 'kind = "measured_ct"\nview_stride = 3')))
    problem = job.problem
    op = problem.operator_for(slice(0, 2))
    assert problem.y.shape == (SLICES, 3, op.geometry.n_det)
    assert op.geometry.angles_deg == tuple(sparse_view_angles(VIEWS))[::3]
    torch.testing.assert_close(problem.y, op(job.volume.reference), atol=1e-5, rtol=1e-5)
    assert (problem.info["views"], problem.info["measured_views"]) == (3, VIEWS)


def test_noise_std_of_the_file_serves_auto_sigma(tmp_path):
    data = parallel_scan(tmp_path / "scan.h5", noise_std=0.02)[0]
    from medrecon.jobs.noise import resolve_sigma_y

    job = prepare_job(load_spec(measured_job(tmp_path, data)))
    assert resolve_sigma_y("auto", job.volume, job.problem) == (0.02, {"sigma_y": 0.02, "source": "simulated"})


def test_measured_and_simulating_kinds_do_not_mix(tmp_path):
    data = parallel_scan(tmp_path / "scan.h5")[0]
    with pytest.raises(ConfigError, match='take operator.kind = "measured_ct"'):
        prepare_job(load_spec(measured_job(tmp_path, data, 'kind = "parallel_beam_ct"')))
    phantom = tmp_path / "phantom.toml"
    phantom.write_text(job_text(tmp_path / "out", f'kind = "ct_phantom"\nsize = {SIZE}\nslices = 1',
                                'kind = "measured_ct"'))
    with pytest.raises(ConfigError, match='needs measured sinograms'):
        prepare_job(load_spec(phantom))


def _edit_sidecar(path: Path, **changes) -> None:
    sidecar = path.with_suffix(".json")
    fields = json.loads(sidecar.read_text())
    for key, value in changes.items():
        if value is None:
            fields.pop(key)
        else:
            fields[key] = value
    sidecar.write_text(json.dumps(fields))


def _fan_sidecar(path: Path) -> None:
    _edit_sidecar(path, geometry="fan", source_distance_mm=60.0, detector_distance_mm=120.0)


BAD_FILES = {
    "views": (lambda p: _edit_sidecar(p, angles_deg=list(range(VIEWS + 1))), "scan.json", "angles_deg",
              "has 8 views but angles_deg lists 9"),
    "detector": (lambda p: _edit_sidecar(p, n_det=40), "scan.json", "n_det", "46 detector cells but n_det = 40"),
    "reference slices": (lambda p: np.save(p.with_name("scan_reference.npy"), np.zeros((2, SIZE, SIZE))),
                         "scan_reference.npy", "reference", "the reference has shape (2, 32, 32)"),
    "nan": (lambda p: np.save(p, np.full((SLICES, VIEWS, 46), np.nan, dtype=np.float32)), "scan.npy", "sinogram",
            "NaN or Inf"),
    "missing field": (lambda p: _edit_sidecar(p, pixel_size_mm=None), "scan.json", "pixel_size_mm",
                      "missing geometry field 'pixel_size_mm'"),
    "missing fan field": (lambda p: (_fan_sidecar(p), _edit_sidecar(p, detector_distance_mm=None)), "scan.json",
                          "detector_distance_mm", "missing geometry field"),
    "unknown kind": (lambda p: _edit_sidecar(p, geometry="cone"), "scan.json", "geometry", "'cone'"),
    "negative distance": (lambda p: (_fan_sidecar(p), _edit_sidecar(p, source_distance_mm=-5.0)), "scan.json",
                          "source_distance_mm", "must be a positive"),
    "negative noise": (lambda p: _edit_sidecar(p, noise_std=-0.1), "scan.json", "noise_std", "must be >= 0"),
    "zero spacing": (lambda p: _edit_sidecar(p, det_spacing_mm=0), "scan.json", "det_spacing_mm",
                     "must be a positive"),
    "misspelt field": (lambda p: _edit_sidecar(p, det_ofset_mm=0.5), "scan.json", "det_ofset_mm",
                       "did you mean 'det_offset_mm'"),
    "no sidecar": (lambda p: p.with_suffix(".json").unlink(), "scan.npy", "sidecar", "no geometry sidecar scan.json"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_are_one_line_errors_in_check_and_run(tmp_path, capsys, case):
    spoil, name, field, message = BAD_FILES[case]
    data = parallel_scan(tmp_path / "scan.npy")[0]
    spoil(data)
    job = measured_job(tmp_path, data)
    for command in ("check", "run"):
        assert cli_main([command, str(job), "--quiet"] if command == "run" else [command, str(job)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert f"{name} [{field}]" in err and message in err, err
    assert not (tmp_path / "measured").exists()


def test_hdf5_errors_name_the_file_and_field(tmp_path):
    data = parallel_scan(tmp_path / "scan.h5")[0]
    with h5py.File(data, "a") as hf:
        hf.attrs["pixel_size_mm"] = 0.0
    with pytest.raises(InputError, match=r"scan\.h5 \[pixel_size_mm\]: pixel_size_mm = 0"):
        read_sinogram(data)
    with h5py.File(data, "a") as hf:
        del hf["sinogram"]
    with pytest.raises(InputError, match=r"scan\.h5 \[sinogram\]: no 'sinogram' dataset"):
        read_sinogram(data)


def test_writer_checks_before_writing(tmp_path):
    op = parallel_beam(SIZE, sparse_view_angles(VIEWS))
    with pytest.raises(InputError, match=r"\[n_det\]"):
        write_sinogram(tmp_path / "scan.npy", np.zeros((1, VIEWS, 10)), op.geometry)
    with pytest.raises(InputError, match=r"\[reference\]"):
        write_sinogram(tmp_path / "scan.h5", np.zeros((1, VIEWS, op.geometry.n_det)), op.geometry,
                       reference=np.zeros((1, 8, 8)))
    assert not list(tmp_path.iterdir())


def test_plan_mask_refuses_measured_sinograms(tmp_path, capsys):
    data = parallel_scan(tmp_path / "scan.h5")[0]
    job = measured_job(tmp_path, data)
    job.write_text(job.read_text() + "\n[plan]\ncandidate_views = 16\n")
    assert cli_main(["plan-mask", str(job), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "operator.kind = 'measured_ct': plan-mask plans the views of simulated sinograms" in err, err
    assert not (tmp_path / "measured").exists()


def test_check_describes_a_measured_job_and_writes_nothing(tmp_path, capsys):
    data = parallel_scan(tmp_path / "scan.npy")[0]
    assert cli_main(["check", str(measured_job(tmp_path, data))]) == 0
    out = capsys.readouterr().out
    assert "operator  measured_ct:" in out and "acquires  parallel beam: 8 views over 180.0 degrees" in out
    assert "adjoint   " in out and "(ok)" in out
    assert not (tmp_path / "measured").exists()
