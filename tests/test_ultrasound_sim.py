"""The RF simulator (phantoms, speckle statistics, haze), B-mode and the ultrasound metrics against their definitions,
and the convolution model cross-checked against PyMUST's ``simus`` + DAS (optional: skipped without pymust)."""
import math

import numpy as np
import pytest
import torch

from medrecon.training.ultrasound_sim import SIM_PROBE, haze_rf, phantom, rf_from_phantom, simulate_frames
from medrecon.metrics.ultrasound import cnr, envelope_psnr, fwhm, gcnr, point_fwhm
from operators.ultrasound import PulseEcho, bmode, envelope, pulse_echo_psf


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_phantoms_have_their_structures():
    g = _gen()
    cysts = phantom("cysts", 128, 64, g)
    assert cysts.inside is not None and bool((cysts.echogenicity[cysts.inside] == 0).all())
    assert bool((cysts.echogenicity[cysts.outside] > 0).all()) and not bool((cysts.inside & cysts.outside).any())
    points = phantom("points", 128, 64, g)
    assert 2 <= len(points.points) <= 5 and points.inside is None
    layers = phantom("layers", 128, 64, g)
    assert 2 <= len(layers.echogenicity.unique()) <= 4
    mixed = phantom("mixed", 128, 64, g)
    assert len(mixed.points) == 2 and mixed.inside is not None
    with pytest.raises(ValueError, match="kind"):
        phantom("liver", 8, 8, g)


def test_speckle_is_fully_developed_and_cysts_are_dark():
    frames, phantoms = simulate_frames(4, 128, 64, _gen(1), kind="cysts")
    assert frames.shape == (4, 128, 64) and frames.dtype == torch.float32
    assert float(frames.abs().amax((1, 2)).min()) == 1.0
    ph = phantoms[0]
    env = envelope(frames[0].double())
    speckle = env[ph.outside]
    assert abs(float(speckle.mean() / speckle.std()) - 1.91) < 0.4  # Rayleigh SNR sqrt(pi / (4 - pi))
    assert float(env[ph.inside].mean()) < 0.2 * float(speckle.mean())
    assert gcnr(env, ph.inside, ph.outside) > 0.8


def test_point_target_fwhm_matches_the_psf():
    probe = SIM_PROBE
    k, w = pulse_echo_psf(probe, 96, anchors=1)
    refl = torch.zeros(1, 96, 32, dtype=torch.float64)
    refl[0, 48, 16] = 1
    env = envelope(PulseEcho(k[0])(refl)[0])
    axial, lateral = point_fwhm(env, (48, 16), probe.dz * 1e3, probe.pitch * 1e3)
    s_f = probe.bandwidth * probe.fc / (2 * math.sqrt(2 * math.log(2)))
    expected_axial = 2 * math.sqrt(2 * math.log(2)) / (2 * math.pi * s_f) * probe.c / 2 * 1e3  # envelope FWHM
    assert abs(axial - expected_axial) / expected_axial < 0.05
    expected_lateral = probe.wavelength * 1.5 * math.sqrt(1 + ((48 * probe.dz - probe.focus) / (
        7 * probe.wavelength * 1.5**2)) ** 2) * 1e3
    assert abs(lateral - expected_lateral) / expected_lateral < 0.25  # lines 0.3 mm apart


def test_haze_decays_with_depth_and_is_laterally_smoother_than_tissue():
    h = haze_rf(128, 64, _gen(2))
    env = envelope(h)
    assert float(env[:32].mean()) > 1.5 * float(env[-32:].mean())
    tissue = rf_from_phantom(phantom("speckle", 128, 64, _gen(3)), _gen(4))

    def lateral_corr(x):
        return float((x[:, 1:] * x[:, :-1]).sum() / (x * x).sum())

    assert lateral_corr(h) > lateral_corr(tissue) + 0.1


def test_bmode_and_metric_definitions():
    rf = torch.randn(64, 16, dtype=torch.float64, generator=_gen(5))
    db = bmode(rf, 40)
    assert float(db.max()) == 0.0 and float(db.min()) >= -40
    x = np.linspace(-3, 3, 61)
    assert abs(fwhm(np.exp(-0.5 * x**2), x[1] - x[0]) - 2 * math.sqrt(2 * math.log(2))) < 1e-2
    assert fwhm(np.ones(5)) == math.inf
    inside, outside = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    inside[:2], outside[2:] = True, True
    separated = np.where(inside, 0.0, 1.0)
    assert gcnr(separated, inside, outside) == 1.0
    same = np.tile([0.0, 1.0], (4, 2))
    assert gcnr(same, inside, outside) == 0.0
    values = np.where(inside, np.array([[0, 2, 0, 2]] * 4), np.array([[5, 7, 5, 7]] * 4)).astype(float)
    assert cnr(values, inside, outside) == pytest.approx(5 / math.sqrt(2))
    assert envelope_psnr(rf, rf) == math.inf
    assert 0 < envelope_psnr(rf, rf + 0.1 * torch.randn(64, 16, dtype=torch.float64, generator=_gen(6))) < 40


def test_convolution_model_matches_pymust_simus_and_das():
    """Four scatterers through PyMUST (simus plane-wave channel data, DAS onto one line per element) against the
    convolution model whose PSF is PyMUST's own beamformed response to one scatterer (32 elements, 9-11 mm)."""
    pymust = pytest.importorskip("pymust")
    p = pymust.getparam("L11-5v")
    p.Nelements, p.fs = 32, 4 * p.fc
    dz = 1540 / 2 / p.fs
    xs = (np.arange(32) - 15.5) * p.pitch
    zs = 9e-3 + np.arange(96) * dz
    grid = np.meshgrid(xs, zs)
    delays = np.zeros((1, 32))

    def simus_das(points, amplitudes):
        x = np.array([xs[c] for _, c in points])
        z = np.array([zs[r] for r, _ in points])
        channel, _ = pymust.simus(x, z, np.array(amplitudes), delays, p)
        das = pymust.dasmtx(channel, grid[0], grid[1], delays, p)
        return (das @ channel.flatten(order="F")).reshape(grid[0].shape, order="F").real

    psf = simus_das([(48, 16)], [1.0])[48 - 20 : 48 + 21, 16 - 9 : 16 + 10]
    points, amplitudes = [(30, 12), (48, 16), (66, 20), (52, 13)], [1.0, -0.7, 0.5, 0.8]
    reference = simus_das(points, amplitudes)
    refl = torch.zeros(1, 96, 32, dtype=torch.float64)
    for (r, c), a in zip(points, amplitudes):
        refl[0, r, c] = a
    model = PulseEcho(torch.from_numpy(np.ascontiguousarray(psf)))(refl)[0].numpy()
    assert np.corrcoef(model.ravel(), reference.ravel())[0, 1] > 0.93
    # the Gaussian PSF at PyMUST's bandwidth has an axial envelope within a factor 2 of simus's two-way pulse
    e = envelope(torch.from_numpy(np.ascontiguousarray(psf)))
    simus_axial = point_fwhm(e, (20, 9), dz)[0]
    from operators.ultrasound import Probe

    ours = pulse_echo_psf(Probe(fc=p.fc, fs=p.fs, pitch=p.pitch, bandwidth=p.bandwidth / 100), 96, anchors=1)[0][0]
    our_axial = point_fwhm(envelope(ours), (ours.shape[0] // 2, ours.shape[1] // 2), dz)[0]
    assert 0.5 < our_axial / simus_axial < 2.0
