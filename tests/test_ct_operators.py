"""CT projectors: the operator contract for every geometry, exact transposition, closed-form disc projections,
agreement with scikit-image's radon, fan beam tending to parallel beam, batching of slice stacks, devices."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from operators import CTProjector, fan_beam, limited_angle_angles, parallel_beam, sparse_view_angles
from tests.contract import assert_operator_contract

N = 24


def _parallel():
    return parallel_beam(N, sparse_view_angles(20), pixel_size=0.8, det_spacing=1.1)


def _fan_equiangular():
    return fan_beam(N, sparse_view_angles(24, 360), source_distance=60.0, detector_distance=110.0, det_spacing=2.0)


def _fan_flat():
    return fan_beam(N, sparse_view_angles(24, 360), source_distance=60.0, detector_distance=110.0, det_spacing=2.0,
                    detector="flat", det_offset=1.5)


def _sparse_view():
    return parallel_beam(N, sparse_view_angles(4))


def _limited_angle():
    return parallel_beam(N, limited_angle_angles(0, 120, 6))


def _rectangular():
    return parallel_beam((N, N + 6), sparse_view_angles(15), det_offset=0.7, pixel_size=1.3, det_spacing=0.9)


# The float32 dot test sums ~1e3 float32 products of random sign in the harness, so its error is float32
# round-off (1e-6 to 2e-5); the float64 dot test (1e-10) is the adjointness check, and
# test_float32_dot_test_is_at_round_off measures float32 operators with float64 accumulation (< 1e-6).
RTOL32 = {"rectangular-offset": 3e-5}

GEOMETRIES = {
    "parallel": (_parallel, (2, N, N)),
    "fan-equiangular": (_fan_equiangular, (2, N, N)),
    "fan-flat": (_fan_flat, (2, N, N)),
    "sparse-view": (_sparse_view, (2, N, N)),
    "limited-angle": (_limited_angle, (2, N, N)),
    "rectangular-offset": (_rectangular, (2, N, N + 6)),
    "stack-3d": (_parallel, (2, 3, N, N)),
}


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_operator_contract(name):
    make, shape = GEOMETRIES[name]
    assert_operator_contract(make(), shape, torch.float32, rtol32=RTOL32.get(name, 1e-5), rtol64=1e-10)


@pytest.mark.parametrize("name", ["parallel", "fan-flat"])
def test_adjoint_is_entrywise_transpose_of_dense_matrix(name):
    op = GEOMETRIES[name][0]().to(torch.float64)
    n_pix = N * N
    basis = torch.eye(n_pix, dtype=torch.float64).reshape(n_pix, N, N)
    dense = op(basis).reshape(n_pix, -1).T  # (rays, pixels)
    sino_basis = torch.eye(dense.shape[0], dtype=torch.float64).reshape(dense.shape[0], *op.sino_shape)
    dense_adj = op.adjoint(sino_basis).reshape(dense.shape[0], n_pix)  # row r: A^T e_r
    assert torch.equal(dense_adj, dense)


def test_float32_dot_test_is_at_round_off():
    op = parallel_beam(64, sparse_view_angles(90))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 64, 64, generator=gen)
    y = torch.randn(1, *op.sino_shape, generator=gen)
    lhs = (op(x).double() * y.double()).sum()
    rhs = (x.double() * op.adjoint(y).double()).sum()
    assert abs(float(lhs - rhs)) / abs(float(lhs)) < 1e-6


def _disc_image(n: int, radius: float, centre: tuple[float, float], pixel: float, supersample: int = 8) -> np.ndarray:
    """Area fraction of each pixel inside a disc (x right, y up, mm)."""
    sub = (np.arange(n * supersample) + 0.5) / supersample - n / 2
    xs = sub * pixel
    ys = -sub * pixel
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    inside = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius**2
    return inside.reshape(n, supersample, n, supersample).mean(axis=(1, 3))


def _closed_form_chords(op: CTProjector, radius: float, centre: tuple[float, float]) -> np.ndarray:
    points, dirs = op.geometry.rays()
    rel = np.asarray(centre)[None, :] - points
    dist = np.abs(rel[:, 0] * dirs[:, 1] - rel[:, 1] * dirs[:, 0])
    return (2 * np.sqrt(np.clip(radius**2 - dist**2, 0, None))).reshape(op.sino_shape)


@pytest.mark.parametrize("geometry", ["parallel", "fan-equiangular", "fan-flat"])
def test_uniform_disc_matches_closed_form_chord_lengths(geometry):
    n, pixel, radius, centre = 48, 0.5, 7.0, (2.0, -3.0)
    if geometry == "parallel":
        op = parallel_beam(n, sparse_view_angles(30), pixel_size=pixel, det_spacing=0.5, dtype=torch.float64)
    else:
        op = fan_beam(n, sparse_view_angles(30, 360), 80.0, 150.0, det_spacing=0.8, pixel_size=pixel,
                      detector=geometry.split("-")[1], dtype=torch.float64)
    img = torch.from_numpy(_disc_image(n, radius, centre, pixel))
    sino = op(img).numpy()
    ref = _closed_form_chords(op, radius, centre)
    # Discretisation (pixelised disc, linear interpolation): about 1.7% in L2 at 14 px radius, mostly at the rim;
    # it halves when the pixel size halves (test_disc_error_is_first_order_in_pixel_size).
    assert np.linalg.norm(sino - ref) / np.linalg.norm(ref) < 0.025
    assert abs(sino.sum() - ref.sum()) / ref.sum() < 2e-3


def test_parallel_disc_chords_against_s_formula():
    """The textbook form 2 sqrt(r^2 - s^2) with s = x cos(theta) + y sin(theta) fixes the angle convention."""
    from operators.ct import disc_sinogram_parallel

    n, pixel, radius, centre = 48, 0.5, 6.0, (-4.0, 2.5)
    op = parallel_beam(n, sparse_view_angles(12), pixel_size=pixel, det_spacing=0.5, dtype=torch.float64)
    sino = op(torch.from_numpy(_disc_image(n, radius, centre, pixel))).numpy()
    ref = disc_sinogram_parallel(op.geometry, radius, centre)
    assert np.linalg.norm(sino - ref) / np.linalg.norm(ref) < 0.025


def test_disc_error_is_first_order_in_pixel_size():
    errors = []
    for n, pixel in ((48, 0.5), (96, 0.25)):
        op = parallel_beam(n, sparse_view_angles(30), pixel_size=pixel, det_spacing=pixel, dtype=torch.float64)
        sino = op(torch.from_numpy(_disc_image(n, 7.0, (2.0, -3.0), pixel))).numpy()
        ref = _closed_form_chords(op, 7.0, (2.0, -3.0))
        errors.append(np.linalg.norm(sino - ref) / np.linalg.norm(ref))
    assert errors[1] < 0.6 * errors[0]


def test_agrees_with_scikit_image_radon():
    skt = pytest.importorskip("skimage.transform")
    from skimage.data import shepp_logan_phantom

    n = 63  # odd: scikit-image's rotation centre n // 2 coincides with the pixel-grid centre (n - 1) / 2
    img = skt.resize(shepp_logan_phantom(), (n, n), anti_aliasing=True)
    angles = sparse_view_angles(36)
    ref = skt.radon(img, np.asarray(angles), circle=False).T
    # scikit-image's detector centre is cell n_det // 2; ours is (n_det - 1) / 2, so shift by half a cell.
    op = parallel_beam(n, angles, n_det=ref.shape[1], det_offset=-0.5, dtype=torch.float64)
    ours = op(torch.from_numpy(img)).numpy()
    # Different discretisations (rotate-and-sum with bilinear warping vs Joseph's ray-driven interpolation).
    assert np.linalg.norm(ours - ref) / np.linalg.norm(ref) < 0.01


@pytest.mark.parametrize("detector", ["equiangular", "flat"])
def test_fan_beam_tends_to_parallel_beam_at_large_source_distance(detector):
    angles = sparse_view_angles(16)
    par = parallel_beam(N, angles, n_det=40, det_spacing=1.0, dtype=torch.float64)
    # magnification 2: 2 mm detector cells sample 1 mm at the isocentre
    fan = fan_beam(N, angles, 1e6, 2e6, n_det=40, det_spacing=2.0, detector=detector, dtype=torch.float64)
    x = torch.rand(2, N, N, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(fan(x), par(x), rtol=0, atol=1e-3 * float(par(x).abs().max()))


def test_volume_stack_equals_slice_by_slice():
    op = _parallel()
    vol = torch.randn(2, 5, N, N, generator=torch.Generator().manual_seed(3))
    sino = op(vol)
    assert sino.shape == (2, 5, *op.sino_shape)
    for b in range(2):
        for d in range(5):
            torch.testing.assert_close(sino[b, d], op(vol[b, d]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(op.adjoint(sino)[1, 2], op.adjoint(sino[1, 2]), rtol=1e-5, atol=1e-5)


def test_default_detector_covers_the_image_diagonal():
    assert parallel_beam(256, sparse_view_angles(2)).geometry.n_det == 363
    assert parallel_beam(16, [0.0]).sino_shape == (1, 23)


def test_angle_helpers():
    assert sparse_view_angles(4) == (0.0, 45.0, 90.0, 135.0)
    assert sparse_view_angles(3, 360) == (0.0, 120.0, 240.0)
    la = limited_angle_angles(0, 120)
    assert len(la) == 120 and la[0] == 0.0 and la[-1] == 119.0
    with pytest.raises(ValueError):
        limited_angle_angles(10, 0)


def test_memory_is_two_csr_matrices():
    op = _parallel()
    expected = 2 * (op.nnz * (4 + 4)) + 4 * (op.sino_shape[0] * op.sino_shape[1] + 1) + 4 * (N * N + 1)
    assert op.memory_bytes() == expected


def test_bad_inputs_raise():
    op = _parallel()
    with pytest.raises(ValueError, match="trailing shape"):
        op(torch.zeros(1, N, N + 1))
    with pytest.raises(TypeError, match="real"):
        op(torch.zeros(1, N, N, dtype=torch.complex64))
    with pytest.raises(ValueError):
        parallel_beam(N, [])
    with pytest.raises(ValueError, match="outside the image"):
        fan_beam(N, [0.0], source_distance=10.0, detector_distance=20.0)
    with pytest.raises(ValueError, match="detector"):
        fan_beam(N, [0.0], 100.0, 200.0, detector="curved")  # type: ignore[arg-type]


def test_module_moves_with_dtype_and_keeps_weights():
    op = _parallel()
    x = torch.randn(1, N, N, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    y32 = op(x.float())
    op64 = op.to(torch.float64)
    assert op64.fwd_val.dtype == torch.float64 and op64.fwd_col.dtype == torch.int32
    torch.testing.assert_close(op64(x).float(), y32, rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    op = fan_beam(N, sparse_view_angles(24, 360), 60.0, 110.0, det_spacing=2.0)
    x = torch.randn(3, N, N, generator=torch.Generator().manual_seed(0))
    y_cpu = op(x)
    op_gpu = op.to("cuda")
    y_gpu = op_gpu(x.cuda())
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(op_gpu.adjoint(y_gpu).cpu(), op.to("cpu").adjoint(y_cpu), rtol=1e-5, atol=1e-4)
    assert_operator_contract(op_gpu.to("cpu"), (2, N, N), torch.float32, rtol32=1e-5)


def test_bench_suite_runs_and_writes_a_table(tmp_path):
    pytest.importorskip("skimage")
    import argparse

    from medrecon.bench import ct as bench

    out = tmp_path / "ct.md"
    args = argparse.Namespace(size=16, views=6, sparse_views=2, slices=2, repeats=1, threads=None, quick=False,
                              device="cpu", out=str(out))
    assert bench.main(args) == 0
    table = out.read_text()
    assert "medrecon (cpu)" in table and "scikit-image" in table and "16x16, 2 views" in table
    medrecon_rows = [line for line in table.splitlines() if line.startswith("| 16x16") and "medrecon" in line]
    assert all(float(row.split("|")[5]) < 1e-6 for row in medrecon_rows)  # adjoint error (dot)


def test_chunked_build_equals_one_pass_over_all_rays():
    """The matrix built chunk by chunk (small chunks forced) equals the one built in a single chunk, in float64
    and float32, with sorted int32 indices."""
    import numpy as np

    from operators import ct_matrix
    from operators.ct_geometry import ParallelBeamGeometry

    geometry = ParallelBeamGeometry((24, 20), tuple(sparse_view_angles(7)), 33)
    points, dirs = geometry.rays()
    whole = ct_matrix.joseph_matrix(points, dirs, geometry.image_size, geometry.pixel_size)
    saved = ct_matrix._CHUNK_ELEMENTS
    try:
        ct_matrix._CHUNK_ELEMENTS = 24 * 5  # five rays per chunk
        for dtype in (np.float64, np.float32):
            parts = ct_matrix.joseph_matrix(points, dirs, geometry.image_size, geometry.pixel_size, dtype)
            assert parts.data.dtype == dtype and parts.indices.dtype == np.int32 and parts.has_sorted_indices
            assert np.array_equal(parts.indptr, whole.indptr) and np.array_equal(parts.indices, whole.indices)
            np.testing.assert_array_equal(parts.data, whole.data.astype(dtype))
    finally:
        ct_matrix._CHUNK_ELEMENTS = saved
