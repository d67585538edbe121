"""``medrecon bench volume``: per-plane metrics on a volume with a known error, the settings syntax, and the suite
being registered."""
import numpy as np
import pytest

from medrecon.bench.cli import SUITES
from medrecon.bench.volume import SPLITS, _settings, plane_metrics


def test_plane_metrics_of_a_known_error_and_air_planes_left_out():
    ref = np.zeros((8, 10, 12), np.float32)
    ref[:, 2:8, 3:9] = 1.0  # a block: coronal planes 2-7 and sagittal planes 3-8 go through it
    recon = ref + 0.1  # MSE 0.01 everywhere: PSNR 20 dB on every plane and the volume
    volume, psnr, ssim = plane_metrics(ref, recon)
    assert volume == pytest.approx(20.0)
    for plane in ("axial", "coronal", "sagittal"):
        assert psnr[plane][0] == pytest.approx(20.0) and psnr[plane][1] == pytest.approx(0.0, abs=1e-9)
    recon[:, 0, :] += 5.0  # a large error on an air-only coronal plane: it is not a plane through the head
    assert plane_metrics(ref, recon)[1]["coronal"][0] == pytest.approx(20.0)
    assert 0 < ssim["axial"][0] < 1


def test_settings_syntax_and_the_registered_suite():
    assert _settings("") == [{}]
    assert _settings("tv=2,tv_xy=0.5;admm_iters=3,final_consistency=false") == [
        {"tv": 2, "tv_xy": 0.5}, {"admm_iters": 3, "final_consistency": False}]
    assert "volume" in SUITES
    assert not set(SPLITS["validation"]) & set(SPLITS["test"]) and max(SPLITS["validation"] + SPLITS["test"]) < 54
