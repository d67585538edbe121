"""Multi-coil MRI operators: contract, fastMRI FFT convention, sigpy SENSE agreement, +0 masking, fast path."""
import numpy as np
import pytest
import torch

from operators import Composition
from operators.mri import Coils, FFT2c, MultiCoilMRI, Subsample, fft2c, ifft2c, multicoil_mri
from tests.contract import assert_operator_contract


def _maps(shape, gen, dtype=torch.complex64):
    return torch.randn(shape, dtype=dtype, generator=gen)


def _column_mask(w, gen):
    return torch.rand(w, generator=gen) < 0.5


def _instances():
    gen = torch.Generator().manual_seed(0)
    cases = []
    for coils in (1, 3, 4):
        cases.append((f"{coils}coil-1d", multicoil_mri(_maps((coils, 8, 6), gen), _column_mask(6, gen)), (2, 8, 6)))
    cases.append(("2d-mask", multicoil_mri(_maps((3, 8, 8), gen), torch.rand(8, 8, generator=gen) < 0.4), (1, 8, 8)))
    cases.append(("single-coil", multicoil_mri(torch.ones(1, 6, 8, dtype=torch.complex64), _column_mask(8, gen)),
                  (2, 6, 8)))
    cases.append(("batched-smaps", multicoil_mri(_maps((2, 3, 8, 6), gen), _column_mask(6, gen)), (2, 8, 6)))
    cases.append(("odd-size", multicoil_mri(_maps((2, 5, 7), gen), _column_mask(7, gen)), (1, 5, 7)))
    cases.append(("generic-composition", Subsample(_column_mask(6, gen)) @ FFT2c() @ Coils(_maps((3, 8, 6), gen)),
                  (1, 8, 6)))
    cases.append(("fft2c", FFT2c(), (2, 5, 6)))
    cases.append(("coils", Coils(_maps((3, 4, 5), gen)), (2, 4, 5)))
    cases.append(("subsample", Subsample(torch.rand(4, 5, generator=gen) < 0.5), (2, 4, 5)))
    return cases


@pytest.mark.parametrize("name,op,x_shape", _instances(), ids=[c[0] for c in _instances()])
def test_operator_contract(name, op, x_shape):
    assert_operator_contract(op, x_shape, torch.complex64)


@pytest.mark.parametrize("shape", [(6, 8), (5, 7), (4, 9)])
def test_fft2c_is_fastmri_centred_orthonormal(shape):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, *shape, dtype=torch.complex128, generator=gen)
    ref = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x.numpy(), axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    torch.testing.assert_close(fft2c(x), torch.from_numpy(ref))
    torch.testing.assert_close(ifft2c(fft2c(x)), x)
    assert torch.equal(FFT2c().normal(x), x)


@pytest.mark.parametrize("mask_kind", ["columns", "2d"])
@pytest.mark.parametrize("shape", [(8, 6), (6, 10), (5, 7)])
def test_agrees_with_sigpy_sense(mask_kind, shape):
    spmri = pytest.importorskip("sigpy.mri")
    gen = torch.Generator().manual_seed(2)
    h, w = shape
    smaps = _maps((4, h, w), gen, torch.complex128)
    mask = _column_mask(w, gen) if mask_kind == "columns" else torch.rand(h, w, generator=gen) < 0.5
    op = multicoil_mri(smaps, mask)
    sense = spmri.linop.Sense(smaps.numpy(), weights=mask.expand(h, w).numpy().astype(np.float64))
    x = torch.randn(h, w, dtype=torch.complex128, generator=gen)
    y = torch.randn(4, h, w, dtype=torch.complex128, generator=gen)
    torch.testing.assert_close(op(x), torch.from_numpy(sense * x.numpy()), rtol=1e-5, atol=1e-5)
    y_masked = torch.where(mask, y, 0)
    torch.testing.assert_close(op.adjoint(y_masked), torch.from_numpy(sense.H * y_masked.numpy()), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("mask_ndim", [1, 2])
def test_fast_path_matches_generic_composition(mask_ndim):
    gen = torch.Generator().manual_seed(3)
    smaps = _maps((5, 12, 10), gen, torch.complex128)
    mask = _column_mask(10, gen) if mask_ndim == 1 else torch.rand(12, 10, generator=gen) < 0.3
    fast = multicoil_mri(smaps, mask)
    assert fast.fast
    generic = Composition(Subsample(mask), FFT2c(), Coils(smaps))
    x = torch.randn(3, 12, 10, dtype=torch.complex128, generator=gen)
    y = torch.randn(3, 5, 12, 10, dtype=torch.complex128, generator=gen)
    torch.testing.assert_close(fast(x), generic(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast.adjoint(y), generic.adjoint(y), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast.normal(x), generic.adjoint(generic(x)), rtol=1e-12, atol=1e-12)


def test_unsampled_kspace_is_positive_zero():
    gen = torch.Generator().manual_seed(4)
    smaps = _maps((3, 8, 8), gen)
    mask = _column_mask(8, gen)
    for op in (multicoil_mri(smaps, mask), Subsample(mask) @ FFT2c() @ Coils(smaps)):
        y = op(-torch.rand(2, 8, 8, generator=gen).to(torch.complex64) - 1j)
        unsampled = y[..., ~mask]
        assert unsampled.numel() > 0
        assert not torch.signbit(unsampled.real).any() and not torch.signbit(unsampled.imag).any()
        assert (unsampled == 0).all()


def test_replace_swaps_the_mask_and_keeps_the_fast_path():
    gen = torch.Generator().manual_seed(5)
    smaps = _maps((2, 8, 8), gen)
    op = multicoil_mri(smaps, torch.zeros(8, dtype=torch.bool))
    full = op.replace(0, Subsample(torch.ones(8, dtype=torch.bool)))
    assert isinstance(full, MultiCoilMRI) and full.fast
    x = torch.randn(1, 8, 8, dtype=torch.complex64, generator=gen)
    assert (op(x) == 0).all()
    torch.testing.assert_close(full(x), fft2c(x.unsqueeze(1) * smaps))
    assert not isinstance(op.replace(1, Coils(torch.ones(1, 8, 8, dtype=torch.complex64))), MultiCoilMRI)


def test_single_coil_is_masked_centred_fft():
    gen = torch.Generator().manual_seed(6)
    mask = _column_mask(8, gen)
    op = multicoil_mri(torch.ones(1, 8, 8, dtype=torch.complex64), mask)
    x = torch.randn(2, 8, 8, dtype=torch.complex64, generator=gen)
    torch.testing.assert_close(op(x)[:, 0], torch.where(mask, fft2c(x), 0))


def test_rejects_bad_smaps_shape():
    with pytest.raises(ValueError, match="smaps"):
        Coils(torch.ones(8, 8, dtype=torch.complex64))


@pytest.mark.gpu
def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    gen = torch.Generator().manual_seed(7)
    op = multicoil_mri(_maps((4, 16, 16), gen), _column_mask(16, gen))
    x = torch.randn(2, 16, 16, dtype=torch.complex64, generator=gen)
    forward, normal = op(x), op.normal(x)
    op_gpu = op.to("cuda")
    torch.testing.assert_close(op_gpu(x.cuda()).cpu(), forward, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(op_gpu.normal(x.cuda()).cpu(), normal, rtol=1e-5, atol=1e-5)


def test_bench_operators_quick_writes_table(tmp_path, capsys):
    from medrecon.bench.cli import suite_parser

    out = tmp_path / "ops.md"
    args = suite_parser("operators").parse_args(["--quick", "--threads", "1", "--out", str(out)])
    assert args._suite_main(args) == 0
    table = out.read_text()
    assert "| medrecon multicoil_mri |" in table and "ratio to floor" in table
    assert table.strip() == capsys.readouterr().out.strip()
