"""3D TV of a CT volume: the 3D difference's adjoint, the closed-form TV denoising of a volume that steps along z
(identity operator), slice-wise TV when the z weight is 0, a gain over slice-wise TV on a z-constant volume, and
the job baseline's entry (one call per volume)."""
import pytest
import torch

from medrecon.baselines.ct import tv_pdhg
from medrecon.baselines.tv3d import divergence_3d, gradient_3d, tv_3d
from operators import Identity, parallel_beam, sparse_view_angles

F64 = torch.float64


def test_the_3d_divergence_is_minus_the_adjoint_of_the_3d_gradient():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, 6, dtype=F64, generator=g)
    q = torch.randn(3, 4, 5, 6, dtype=F64, generator=g)
    for w in (0.0, 0.7, 2.0):
        torch.testing.assert_close((gradient_3d(x, w) * q).sum(), -(x * divergence_3d(q, w)).sum())


@pytest.mark.parametrize("z_weight", [0.5, 1.0, 2.0])
def test_tv_denoising_of_a_step_along_z_has_its_closed_form(z_weight):
    """``y``: 2 slices of 0 then 4 of 1 (each constant in-plane). The minimiser of ``||x - y||^2 / 2 + lam TV(x)``
    keeps both plateaus and moves them together by ``lam w / n`` (``n``: the plateau's slices)."""
    y = torch.zeros(6, 4, 4, dtype=F64)
    y[2:] = 1.0
    lam = 0.3
    x = tv_3d(y, Identity(), lam=lam, z_weight=z_weight, iters=4000)
    expected = torch.where(torch.arange(6)[:, None, None] < 2, lam * z_weight / 2, 1 - lam * z_weight / 4)
    torch.testing.assert_close(x, expected.to(F64).expand_as(x), atol=1e-6, rtol=0)


def _ct_volume(z=3, n=16, views=6, noise=0.0, seed=1):
    g = torch.Generator().manual_seed(seed)
    image = torch.zeros(n, n)
    image[4:12, 5:11] = 1.0
    image[6:9, 7:9] = 0.5
    volume = image.expand(z, n, n).contiguous()
    A = parallel_beam(n, sparse_view_angles(views))
    y = A(volume)
    return volume, A, y + noise * float(y.abs().max()) * torch.randn(y.shape, generator=g)


def test_with_z_weight_zero_it_is_slice_wise_tv():
    _, A, y = _ct_volume(noise=0.02)
    torch.testing.assert_close(tv_3d(y, A, lam=0.05, z_weight=0.0, iters=60), tv_pdhg(y, A, lam=0.05, iters=60),
                               rtol=0, atol=0)


def test_coupling_the_slices_beats_slice_wise_tv_on_a_z_constant_volume():
    volume, A, y = _ct_volume(z=4, noise=0.05)
    err = lambda x: float((x - volume).square().mean())
    assert err(tv_3d(y, A, lam=0.05, z_weight=1.0)) < 0.85 * err(tv_pdhg(y, A, lam=0.05))
    with pytest.raises(ValueError, match="one volume"):
        tv_3d(y[None], A)


def test_the_job_baseline_takes_the_whole_volume():
    from medrecon.jobs.baselines import BASELINES, MODALITY
    from medrecon.jobs.registry import REGISTRY

    build = REGISTRY.get("baseline", "tv_3d").build
    assert getattr(build, "couples_batch", False) and MODALITY["tv_3d"] == "ct"
    assert not getattr(BASELINES["tv"], "couples_batch", False)
    _, A, y = _ct_volume(noise=0.02)
    torch.testing.assert_close(build(y, A, lam_rel=0.03, z_weight=1.0, iters=40),
                               tv_3d(y, A, lam_rel=0.03, z_weight=1.0, iters=40))
