"""Prior adapters: VP eps/x0/v agree after conversion, EDM preconditioning, complex packing, slice-wise 3D."""
import math

import pytest
import torch

from medrecon.priors.adapters import (
    AddChannel,
    ComplexAsChannels,
    EDMDenoiser,
    SliceWise,
    VEDenoiser,
    VPDenoiser,
    channels_to_complex,
    complex_to_channels,
)
from medrecon.priors.base import Denoiser, score
from medrecon.schedules import vp_alpha_bar, vp_alpha_bar_to_sigma

AB = vp_alpha_bar(1e-3, 0.2, 50)


@pytest.fixture(autouse=True)
def float64_default():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _ab_of_t(t: torch.Tensor) -> torch.Tensor:
    """alpha_bar at fractional t, consistent with VPDenoiser.timestep (linear in log sigma between steps)."""
    ls = vp_alpha_bar_to_sigma(AB).log()
    i = t.floor().long().clamp(0, len(ls) - 2)
    log_s = ls[i] + (t - i) * (ls[i + 1] - ls[i])
    return 1 / (1 + (2 * log_s).exp())


class EpsNet(torch.nn.Module):
    """A fixed nonlinear eps-predictor on (B, C, H, W) VP inputs."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 2, 3, padding=1)
        torch.nn.init.normal_(self.conv.weight, std=0.3)

    def forward(self, x_vp, t):
        return torch.tanh(self.conv(x_vp)) * (1 + 0.01 * t.reshape(-1, 1, 1, 1))


def test_vp_eps_x0_v_adapters_give_the_same_tweedie_estimate():
    eps_net = EpsNet()

    def x0_net(x_vp, t):
        ab = _ab_of_t(t).reshape(-1, 1, 1, 1)
        return (x_vp - (1 - ab).sqrt() * eps_net(x_vp, t)) / ab.sqrt()

    def v_net(x_vp, t):
        ab = _ab_of_t(t).reshape(-1, 1, 1, 1)
        x0 = x0_net(x_vp, t)
        return ab.sqrt() * eps_net(x_vp, t) - (1 - ab).sqrt() * x0

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 8, 8, generator=g)
    sigma = torch.tensor([0.05, 0.7, 3.0])
    d_eps = VPDenoiser(eps_net, AB, "eps")(x, sigma)
    d_x0 = VPDenoiser(x0_net, AB, "x0")(x, sigma)
    d_v = VPDenoiser(v_net, AB, "v")(x, sigma)
    torch.testing.assert_close(d_x0, d_eps, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(d_v, d_eps, rtol=1e-10, atol=1e-10)


def test_vp_timestep_lookup_hits_table_entries_and_interpolates_in_log_sigma():
    vp = VPDenoiser(EpsNet(), AB, "eps")
    sig = vp_alpha_bar_to_sigma(AB)
    torch.testing.assert_close(vp.timestep(sig[[0, 7, 49]]), torch.tensor([0.0, 7.0, 49.0]))
    mid = (sig[10].log() + sig[11].log()).div(2).exp()
    torch.testing.assert_close(vp.timestep(mid[None]), torch.tensor([10.5]))
    assert VPDenoiser(EpsNet(), AB, "eps", round_timestep=True).timestep(mid[None] * 1.01).item() == 11.0


def test_vp_input_scaling_and_eps_conversion_match_closed_form():
    seen = {}

    def net(x_vp, t):
        seen["x_vp"] = x_vp
        return torch.ones_like(x_vp)

    x = torch.randn(2, 1, 4, 4)
    sigma = torch.tensor([0.5, 2.0])
    out = VPDenoiser(net, AB, "eps")(x, sigma)
    torch.testing.assert_close(seen["x_vp"], x / (1 + sigma**2).sqrt().reshape(-1, 1, 1, 1))
    torch.testing.assert_close(out, x - sigma.reshape(-1, 1, 1, 1))


def test_exact_gaussian_behind_every_parameterisation():
    """A N(m, s0^2) prior: VE-score, VE-x0 and EDM wrappers of its exact network all equal the closed form."""
    m, s0 = 0.3, 0.8

    def exact(x, s):
        s = s.reshape(-1, 1, 1, 1)
        return (s0**2 * x + s**2 * m) / (s0**2 + s**2)

    def score_net(x, s):
        return (exact(x, s) - x) / s.reshape(-1, 1, 1, 1) ** 2

    sd = 0.5

    def edm_net(x_in, c_noise):  # F such that c_skip x + c_out F = exact
        s = (4 * c_noise).exp()
        x = x_in * (s**2 + sd**2).sqrt().reshape(-1, 1, 1, 1)
        c_skip = (sd**2 / (s**2 + sd**2)).reshape(-1, 1, 1, 1)
        c_out = (s * sd / (s**2 + sd**2).sqrt()).reshape(-1, 1, 1, 1)
        return (exact(x, s) - c_skip * x) / c_out

    x = torch.randn(4, 1, 5, 5)
    sigma = torch.tensor([0.01, 0.3, 1.0, 10.0])
    want = exact(x, sigma)
    torch.testing.assert_close(VEDenoiser(score_net, "score")(x, sigma), want)
    torch.testing.assert_close(VEDenoiser(lambda x, s: exact(x, s.exp()), "x0", "log_sigma")(x, sigma), want)
    torch.testing.assert_close(EDMDenoiser(edm_net, sd)(x, sigma), want)
    torch.testing.assert_close(score(VEDenoiser(score_net, "score"), x, sigma), score_net(x, sigma))


def test_edm_coefficients_limits():
    edm = EDMDenoiser(lambda x, c: torch.zeros_like(x), sigma_data=0.5, c_noise_scale=1000.0)
    c_skip, c_out, c_in, c_noise = edm.coefficients(torch.tensor([1e-6, 0.5, 1e6]))
    torch.testing.assert_close(c_skip, torch.tensor([1.0, 0.5, 0.0]), atol=1e-9, rtol=0)
    torch.testing.assert_close(c_out[1], torch.tensor(0.5 / math.sqrt(2)))
    torch.testing.assert_close(c_in[1], torch.tensor(1 / math.sqrt(0.5)))
    torch.testing.assert_close(c_noise[1], torch.tensor(250 * math.log(0.5)))
    x = torch.randn(3, 1, 4, 4)
    torch.testing.assert_close(edm(x, torch.tensor([1e-6, 0.5, 1e6])),
                               c_skip.reshape(-1, 1, 1, 1) * x)


def test_complex_as_channels_round_trip_and_wrapping():
    z = torch.randn(2, 6, 7, dtype=torch.complex128)
    ch = complex_to_channels(z)
    assert ch.shape == (2, 2, 6, 7) and not ch.is_complex()
    torch.testing.assert_close(channels_to_complex(ch), z)
    torch.testing.assert_close(ch[:, 0], z.real)
    torch.testing.assert_close(ch[:, 1], z.imag)
    d = ComplexAsChannels(lambda x, s: x * torch.tensor([2.0, -1.0]).reshape(1, 2, 1, 1))
    torch.testing.assert_close(d(z, 0.1), 2 * z.real - 1j * z.imag)
    with pytest.raises(TypeError):
        d(z.real, 0.1)
    assert isinstance(d, Denoiser)


def test_add_channel_wraps_real_images():
    d = AddChannel(lambda x, s: x * s.reshape(-1, 1, 1, 1))
    x = torch.randn(3, 4, 4)
    torch.testing.assert_close(d(x, torch.tensor([1.0, 2.0, 3.0])), x * torch.tensor([1.0, 2.0, 3.0])[:, None, None])


def test_slicewise_equals_per_slice_application_and_bounds_the_chunk():
    net = EpsNet()
    base = ComplexAsChannels(EDMDenoiser(net, 0.5, 1000.0))
    sizes = []

    def recording(x, s):
        sizes.append(x.shape[0])
        return base(x, s)

    vol = torch.randn(2, 5, 8, 8, dtype=torch.complex128)
    sigma = torch.tensor([0.1, 0.9])
    out = SliceWise(recording, chunk=3)(vol, sigma)
    want = torch.stack([torch.stack([base(vol[b, d][None], sigma[b:b + 1])[0] for d in range(5)]) for b in range(2)])
    torch.testing.assert_close(out, want)
    assert max(sizes) <= 3 and sum(sizes) == 10
    with pytest.raises(ValueError):
        SliceWise(base)(vol[0], 0.1)
