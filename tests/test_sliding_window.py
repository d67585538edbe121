"""Windowed denoising of grids larger than a crop-trained network's scale: ``SlidingWindow`` and the sidecar's
``serves.window``."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from medrecon.errors import InputError
from medrecon.priors.adapters import SlidingWindow
from medrecon.priors.base import as_sigma
from medrecon.priors.meta import served_shapes

pytest.importorskip("monai")


def _pointwise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A denoiser with no spatial context: every window gives the same value at a pixel, so blending is exact."""
    return x / (1 + as_sigma(sigma, x).reshape(-1, 1, 1, 1) ** 2)


def test_windows_blend_exactly_for_a_pointwise_denoiser_on_non_square_grids():
    seen = []

    def net(x, sigma):
        seen.append(tuple(x.shape[-2:]))
        return _pointwise(x, sigma)

    x = torch.randn(3, 2, 70, 45)
    out = SlidingWindow(net, (32, 32), overlap=0.25)(x, 0.5)
    torch.testing.assert_close(out, _pointwise(x, torch.full((3,), 0.5)))
    assert set(seen) == {(32, 32)}  # every network call sees one window size


def test_each_image_keeps_its_own_sigma():
    x = torch.randn(4, 1, 40, 40)
    sigma = torch.tensor([0.1, 2.0, 0.1, 1.0])
    out = SlidingWindow(_pointwise, (16, 24))(x, sigma)
    torch.testing.assert_close(out, _pointwise(x, sigma))


def test_small_grids_pass_through_and_short_sides_get_their_own_length():
    calls = []

    def net(x, sigma):
        calls.append(tuple(x.shape[-2:]))
        return _pointwise(x, sigma)

    small = torch.randn(1, 1, 24, 32)
    torch.testing.assert_close(SlidingWindow(net, (32, 32))(small, 1.0), _pointwise(small, torch.ones(1)))
    assert calls == [(24, 32)]
    wide = torch.randn(1, 1, 20, 100)
    SlidingWindow(net, (32, 32))(wide, 1.0)
    assert set(calls[1:]) == {(20, 32)}


def test_windows_see_local_context_only():
    """A denoiser returning its window's mean: far from the window, a bright spot leaves the output unchanged."""
    def window_mean(x, sigma):
        return x.mean(dim=(-2, -1), keepdim=True).expand_as(x).clone()

    x = torch.zeros(1, 1, 128, 128)
    x[..., :8, :8] = 1.0
    out = SlidingWindow(window_mean, (32, 32), overlap=0.5)(x, 1.0)
    assert float(out[..., :16, :16].min()) > 0
    assert float(out[..., 64:, 64:].abs().max()) == 0.0


def test_gradients_flow_through_the_windows():
    x = torch.randn(2, 1, 48, 40, requires_grad=True)
    SlidingWindow(_pointwise, (16, 16))(x, torch.tensor([0.5, 1.0])).sum().backward()
    expected = (1 / (1 + torch.tensor([0.5, 1.0]) ** 2)).reshape(2, 1, 1, 1).expand_as(x)
    torch.testing.assert_close(x.grad, expected)


def test_levels_above_sigma_max_run_in_one_pass():
    """With ``sigma_max`` the windows serve low noise only; a noisier image in the same batch sees its whole grid."""
    grids = []

    def net(x, sigma):
        grids.append((tuple(x.shape[-2:]), tuple(float(v) for v in sigma)))
        return _pointwise(x, sigma)

    x = torch.randn(3, 1, 64, 64)
    sigma = torch.tensor([0.05, 1.0, 0.05])
    out = SlidingWindow(net, (32, 32), sigma_max=0.1)(x, sigma)
    torch.testing.assert_close(out, _pointwise(x, sigma))
    assert ((64, 64), (1.0,)) in grids
    assert all(shape == (32, 32) for shape, levels in grids if levels[0] == 0.05)
    assert served_shapes({"serves": {"window": 96, "window_sigma_max": 0.5}}).window_sigma_max == 0.5
    with pytest.raises(InputError, match=r"\[serves.window_sigma_max\]: expected a positive noise level"):
        served_shapes({"serves": {"window": 96, "window_sigma_max": 0}})


def test_bad_windows_are_refused():
    with pytest.raises(ValueError, match="window sides >= 8"):
        SlidingWindow(_pointwise, (4, 32))
    with pytest.raises(ValueError, match="overlap"):
        SlidingWindow(_pointwise, (32, 32), overlap=1.0)
    assert served_shapes({"serves": {"window": 96}}).window == (96, 96)
    with pytest.raises(InputError, match=r"\[serves.window\]: expected window sides >= 8"):
        served_shapes({"serves": {"window": [4, 96]}})
    with pytest.raises(InputError, match=r"\[serves.window\]"):
        served_shapes({"serves": {"window": "large"}})


def test_load_prior_takes_the_sidecar_window_and_the_override(tmp_path):
    """A shipped prior copied with ``serves.window`` runs in windows; ``window=0`` runs it in one pass and gives
    the sidecar-less result; a window no smaller than the grid changes nothing."""
    from medrecon.priors.checkpoint import DEFAULT_DIR, load_prior

    meta = json.loads((DEFAULT_DIR / "ct.json").read_text())
    meta["serves"]["window"] = [32, 32]
    (tmp_path / "ct.json").write_text(json.dumps(meta))
    shutil.copy(DEFAULT_DIR / meta["weights"], tmp_path / meta["weights"])
    x = torch.rand(1, 64, 48)
    with torch.no_grad():
        windowed = load_prior(tmp_path / "ct.json")(x, 0.3)
        one_pass = load_prior(tmp_path / "ct.json", window=0)(x, 0.3)
        shipped = load_prior("ct")(x, 0.3)
        wide = load_prior("ct", window=64)(x, 0.3)
    assert served_shapes(load_prior(tmp_path / "ct.json").meta).window == (32, 32)
    torch.testing.assert_close(one_pass, shipped)
    torch.testing.assert_close(wide, shipped)
    assert float((windowed - shipped).abs().max()) > 1e-4


def test_job_option_prior_window():
    """``prior.window`` overrides the sidecar's window (0: one pass); sides under 8 pixels are a config error."""
    from medrecon.errors import ConfigError
    from medrecon.jobs.components import default_prior
    from medrecon.jobs.problem import Volume

    image = torch.zeros(1, 32, 32)
    ct = Volume("ct", None, image=image, reference=image)
    assert served_shapes(default_prior(ct, name="ct", window=64).meta).window == (64, 64)
    assert served_shapes(default_prior(ct, name="ct", window=0).meta).window is None
    with pytest.raises(ConfigError, match=r"prior.window = 4: windows need sides >= 8"):
        default_prior(ct, name="ct", window=4)


def test_check_names_the_window():
    from medrecon.jobs.check_command import describe_prior
    from medrecon.jobs.components import default_prior
    from medrecon.jobs.problem import Volume

    image = torch.zeros(1, 32, 32)
    ct = Volume("ct", None, image=image, reference=image)
    line = describe_prior("default", default_prior(ct, name="ct", window=96), ct)
    assert "larger grids denoised in 96x96 windows" in line
    assert "windows" not in describe_prior("default", default_prior(ct, name="ct", window=0), ct)
