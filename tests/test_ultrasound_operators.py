"""Ultrasound operators: the operator contract for every linear model, and independent references
(scipy.signal's convolve2d and hilbert, dense selection matrices, the closed-form demodulation of a pulse)."""
import math

import numpy as np
import pytest
import scipy.signal
import torch

from operators import Composition
from operators.testing import check_adjoint
from operators.ultrasound import (
    Demodulate,
    Probe,
    PulseEcho,
    ScanLines,
    SourceMixture,
    analytic_signal,
    envelope,
    equispaced_lines,
    haze_mixture,
    log_compress,
    mu_law_compress,
    mu_law_expand,
    pulse_echo_psf,
)
from tests.contract import assert_operator_contract

PROBE = Probe(fc=5e6, fs=20e6, n_elements=16, pitch=0.3e-3, focus=1.5e-3)


def _psf(samples=24, anchors=3):
    k, w = pulse_echo_psf(PROBE, samples, anchors=anchors)
    return k.float(), w.float()


def _instances():
    k, w = _psf()
    return {
        "pulse_echo_invariant": (PulseEcho(k[1]), (2, 24, 16)),
        "pulse_echo_axially_varying": (PulseEcho(k, w), (2, 24, 16)),
        "scan_lines": (ScanLines([0, 3, 5, 10, 15], 16), (2, 24, 16)),
        "haze_mixture": (haze_mixture(0.7), (2, 2, 24, 16)),
        "lines_of_pulse_echo": (ScanLines(equispaced_lines(16, 2), 16) @ PulseEcho(k, w), (2, 24, 16)),
        "pulse_echo_of_mixture": (PulseEcho(k, w) @ haze_mixture(0.5), (2, 2, 24, 16)),
    }


REAL = _instances()


@pytest.mark.parametrize("name", sorted(REAL))
@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_ultrasound_operators_meet_the_contract(name, dtype):
    op, shape = REAL[name]
    assert_operator_contract(op, shape, dtype)


@pytest.mark.parametrize("decimation", [1, 2])
def test_demodulation_meets_the_contract(decimation):
    op = Demodulate(PROBE.fc, PROBE.fs, 24, taps=9, decimation=decimation)
    assert_operator_contract(op, (2, 24, 8), torch.complex64)
    assert_operator_contract(ScanLines([1, 4, 6], 8) @ op, (2, 24, 8), torch.complex64)


def test_pulse_echo_is_scipy_convolve2d_per_depth_weight():
    k, w = pulse_echo_psf(PROBE, 30, anchors=3)
    x = torch.randn(2, 30, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = PulseEcho(k, w)(x)
    for b in range(2):
        ref = sum(w[j].numpy()[:, None] * scipy.signal.convolve2d(x[b].numpy(), k[j].numpy(), mode="same")
                  for j in range(k.shape[0]))
        np.testing.assert_allclose(got[b].numpy(), ref, rtol=1e-10, atol=1e-12)
    single = PulseEcho(k[0])(x)
    np.testing.assert_allclose(single[0].numpy(), scipy.signal.convolve2d(x[0].numpy(), k[0].numpy(), "same"),
                               rtol=1e-10, atol=1e-12)


def test_pulse_echo_matches_its_dense_matrix():
    k, w = pulse_echo_psf(PROBE, 10, anchors=2)
    op = PulseEcho(k, w)
    eye = torch.eye(10 * 6, dtype=torch.float64).reshape(-1, 10, 6)
    dense = op(eye).reshape(60, 60).T  # column j = A e_j
    torch.testing.assert_close(op.adjoint(eye).reshape(60, 60).T, dense.T)


def test_psf_weights_interpolate_between_anchor_depths_and_widen_off_focus():
    k, w = pulse_echo_psf(PROBE, 200, anchors=4)
    torch.testing.assert_close(w.sum(0), torch.ones(200, dtype=torch.float64))
    assert w[0, 0] == 1 and w[-1, -1] == 1
    lateral = k[:, k.shape[1] // 2]  # the lateral profile at the pulse centre of each anchor
    widths = (lateral > 0.5 * lateral.amax(1, keepdim=True)).sum(1)
    z = torch.linspace(0, float(PROBE.depths(200)[-1]), 4)
    nearest = int((z - PROBE.focus).abs().argmin())
    assert int(widths[nearest]) == int(widths.min()) and int(widths[-1]) > int(widths.min())


def test_scan_lines_select_columns_like_a_dense_matrix_and_swap_by_type():
    op = ScanLines.from_mask(torch.tensor([1, 0, 0, 1, 1, 0, 0, 1], dtype=torch.bool))
    assert op.indices.tolist() == [0, 3, 4, 7] and op.mask.sum() == 4
    x = torch.randn(3, 5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    s = torch.zeros(8, 4, dtype=torch.float64)
    s[op.indices, torch.arange(4)] = 1
    torch.testing.assert_close(op(x), x @ s)
    y = torch.randn(3, 5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(op.adjoint(y), y @ s.T)
    k, w = _psf(5, 1)
    a = Composition(op, PulseEcho(k[0].double()))
    b = a.with_factor(ScanLines, ScanLines([1, 2], 8))
    assert b(x).shape == (3, 5, 2) and b.ops[1] is a.ops[1]
    assert equispaced_lines(16, 4).tolist() == [1, 5, 9, 13]
    assert equispaced_lines(16, 2, offset=0).tolist() == list(range(0, 16, 2))
    with pytest.raises(ValueError, match="expected 8 scan lines along dim -1, got 16"):
        op(torch.zeros(2, 5, 16))


def test_source_mixture_is_the_haze_model():
    x = torch.randn(2, 6, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    h = torch.randn(2, 6, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    op = haze_mixture(0.3)
    torch.testing.assert_close(op(torch.stack([x, h], -3)), x + 0.3 * h)
    torch.testing.assert_close(op.adjoint(x), torch.stack([x, 0.3 * x], -3))
    three = SourceMixture([1.0, 2.0, -1.0])
    check_adjoint(three, (2, 3, 4, 4), torch.float64)
    with pytest.raises(ValueError, match="3 sources"):
        three(torch.zeros(2, 2, 4, 4))


def test_analytic_signal_is_scipy_hilbert():
    for n in (31, 32):
        rf = torch.randn(3, n, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
        ref = scipy.signal.hilbert(rf.numpy(), axis=-2)
        np.testing.assert_allclose(analytic_signal(rf).numpy(), ref, rtol=1e-10, atol=1e-12)


def _pulse_rf(samples=128, lines=3):
    t = torch.arange(samples, dtype=torch.float64) / PROBE.fs
    tc = t[samples // 2]
    env = torch.exp(-0.5 * ((t - tc) / 0.4e-6) ** 2)
    rf = env * torch.cos(2 * math.pi * PROBE.fc * t + 0.3)
    return rf[:, None].expand(samples, lines).clone(), env, t


def test_demodulation_matches_hilbert_baseband_and_remodulates():
    rf, env, t = _pulse_rf()
    demod = Demodulate(PROBE.fc, PROBE.fs, rf.shape[0], taps=41)
    iq = demod(rf)
    ref = torch.from_numpy(scipy.signal.hilbert(rf.numpy(), axis=0)) * torch.exp(
        -2j * math.pi * PROBE.fc * t)[:, None] / 2
    inner = slice(25, -25)  # away from the filter's zero boundary
    torch.testing.assert_close(iq[inner], ref[inner], rtol=0, atol=2e-3)
    torch.testing.assert_close(2 * iq.abs()[inner, 0], env[inner], rtol=0, atol=4e-3)
    torch.testing.assert_close(demod.remodulate(iq)[inner], rf[inner], rtol=0, atol=5e-3)
    torch.testing.assert_close(envelope(iq), iq.abs())
    torch.testing.assert_close(envelope(rf)[inner, 0], env[inner], rtol=0, atol=5e-3)
    dec = Demodulate(PROBE.fc, PROBE.fs, rf.shape[0], taps=41, decimation=2)
    torch.testing.assert_close(dec(rf), iq[::2])
    torch.testing.assert_close(dec.remodulate(dec(rf))[inner], rf[inner], rtol=0, atol=2e-2)


def test_companding_and_log_compression():
    x = torch.linspace(-1, 1, 101, dtype=torch.float64)
    y = mu_law_compress(x)
    torch.testing.assert_close(mu_law_expand(y), x)
    assert float(y.abs().max()) == 1.0 and bool((y.diff() > 0).all())
    torch.testing.assert_close(mu_law_compress(torch.tensor(0.5)), torch.tensor(math.log1p(127.5) / math.log(256)))
    env = torch.tensor([[[1.0, 0.1], [0.01, 1e-6]]])
    db = log_compress(env, 50)
    torch.testing.assert_close(db, torch.tensor([[[0.0, -20.0], [-40.0, -50.0]]]))
    xg = torch.randn(2, 16, 4, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(log_compress(envelope(xg, eps=1e-6)).sum() + mu_law_compress(0.1 * xg).sum(), xg)
    assert bool(grad.isfinite().all()) and float(grad.abs().max()) > 0


@pytest.mark.gpu
def test_ultrasound_operators_on_cuda_match_cpu():
    if not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    gen = torch.Generator().manual_seed(7)
    for name, (op, shape) in REAL.items():
        x = torch.randn(shape, generator=gen)
        gpu = op.to("cuda")
        torch.testing.assert_close(gpu(x.cuda()).cpu(), op.to("cpu")(x), rtol=1e-5, atol=1e-5, msg=name)
        check_adjoint(gpu, shape, torch.float32, gen, device="cuda")
    demod = Demodulate(PROBE.fc, PROBE.fs, 24, taps=9, decimation=2)
    x = torch.randn(2, 24, 8, generator=gen)
    torch.testing.assert_close(demod.to("cuda")(x.cuda()).cpu(), demod.to("cpu")(x), rtol=1e-5, atol=1e-5)
