"""Native-size benchmark inputs: fastMRI files at scanner grids (``medrecon bench native``) and the head-CT
reconstruction check at other grids (``python -m medrecon.bench.ct_head --size``)."""
from pathlib import Path

import numpy as np
import pytest

from medrecon.bench import native
from medrecon.io.fastmri import read_info

pytest.importorskip("nilearn")


def test_recon_size_follows_fastmri():
    assert native.recon_size((640, 368)) == (320, 320)
    assert native.recon_size((640, 372)) == (320, 320)
    assert native.recon_size((320, 320)) == (320, 320)
    assert native.recon_size((64, 40)) == (64, 40)


def test_a_640x368_file_states_its_recon_grid_and_1mm_pixels(tmp_path):
    path = native.write_native_file(tmp_path / "f.h5", (640, 368), coils=2, slices=1, noise=0.0)
    info = read_info(path)
    assert info.kspace_shape == (640, 368) and info.coils == 2 and info.num_slices == 1
    assert info.recon_size == (320, 320)
    assert info.pixel_spacing == pytest.approx((1.0, 1.0))
    bare = read_info(native.write_native_file(tmp_path / "g.h5", 48, coils=2, slices=1, noise=0.0, fov=False))
    assert bare.kspace_shape == bare.recon_size == (48, 48) and bare.pixel_spacing is None


def test_noisy_files_carry_the_noiseless_reference_unless_asked(tmp_path):
    import h5py

    def reference(name, **kw):
        path = native.write_native_file(tmp_path / name, 48, coils=2, slices=1, noise=0.02, fov=False, **kw)
        with h5py.File(path, "r") as f:
            return f["reconstruction_rss"][()]

    clean = native.write_native_file(tmp_path / "c.h5", 48, coils=2, slices=1, noise=0.0, fov=False)
    with h5py.File(clean, "r") as f:
        truth = f["reconstruction_rss"][()]
    assert np.array_equal(reference("n.h5"), truth)
    noisy = reference("m.h5", clean_reference=False)
    assert not np.allclose(noisy, truth) and np.abs(noisy - truth).max() < 0.5 * truth.max()


def test_the_ct_check_runs_at_another_grid_with_tv_weights():
    from medrecon.bench import ct_head
    from medrecon.jobs.image_sets import CRANIUM_PATH

    if not Path(CRANIUM_PATH).exists():
        pytest.skip("the InVesalius Cranium example is not installed")
    pytest.importorskip("monai")
    rows = ct_head.recon_check({"ct": {"kind": "default"}}, slices=(8,), views=8, steps=1, size=48,
                               tv_lams=(0.01,), dds={"cg_iters": 2})
    assert list(rows) == ["DDS 1 steps, cg_iters 2, ct", "TV", "TV, lam_rel 0.01"]
    assert all(np.isfinite(r["psnr"]) and 0 < r["ssim"] <= 1 for r in rows.values())
    assert rows["TV"]["psnr"] != rows["TV, lam_rel 0.01"]["psnr"]
    volume = ct_head._cranium_data(slices=[8], size=64)
    assert volume.image.shape == (1, 64, 64)
    assert volume.affine[0, 0] == pytest.approx(0.957 * 4)


def test_validation_images_differ_from_the_reported_ones(tmp_path):
    import h5py

    def reference(images):
        path = native.write_native_file(tmp_path / f"{images}.h5", 64, coils=2, slices=1, noise=0.0, fov=False,
                                        images=images)
        with h5py.File(path, "r") as f:
            return f["reconstruction_rss"][()]

    heldout, validation = reference("heldout"), reference("validation")
    assert heldout.shape == validation.shape == (1, 64, 64) and not np.allclose(heldout, validation)


def test_bench_native_takes_job_overrides(tmp_path, capsys):
    import argparse

    pytest.importorskip("monai")
    parser = argparse.ArgumentParser()
    native.add_arguments(parser)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(tmp_path / "t.md"))
    args = parser.parse_args(["--size", "32", "--coils", "2", "--slices", "1", "--steps", "1", "--images",
                              "validation", "--set", "sampler.cg_iters=2", "--set", "run.baselines=[]"])
    assert native.main(args) == 0
    text = (tmp_path / "t.md").read_text()
    assert "validation slices" in text and "sampler.cg_iters=2" in text and "| DDS | 1 |" in text
    assert "CG-SENSE" not in text
