"""``medrecon bench operators``: multi-coil MRI forward+adjoint pair vs the torch.fft floor and peer libraries.

Problem: 15 birdcage coils (``sum |S|^2 = 1``), 320x320 complex64, 4x equispaced column mask
(``equispaced_fraction_mask``, 80 of 320 columns). Every implementation runs in this one process; repeats are
interleaved (A, B, C, A, B, C, ...) and the median is reported. Peers that are not importable are skipped with a
note; none is a dependency. ``--coil-maps`` adds ``lowres_maps``, the project's ``espirit_maps`` and sigpy's
``EspiritCalib`` (when importable) timed on the same slice.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from operators.coil_maps import center_columns, espirit_maps, lowres_maps
from operators.masks import equispaced_fraction_mask
from operators.mri import fft2c, ifft2c, multicoil_mri

__all__ = ["Pair", "add_arguments", "main"]

Pair = tuple[Callable, Callable, Callable, Callable]  # forward, adjoint, to_library(x), from_library(y)
FLOOR = "plain torch.fft pair (centred, ortho): the floor"
UNSHIFTED = "torch.fft pair without shifts (not centred; lower bound)"
NORMAL = "medrecon A.normal(x) (one call; replaces the pair in CG)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--coils", type=int, default=15)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--coil-maps", action="store_true", help="also time coil maps (lowres, ESPIRiT, sigpy)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _problem(coils: int, size: int, device: torch.device):
    from medrecon.io.simulate import birdcage_maps

    gen = torch.Generator().manual_seed(0)
    smaps = birdcage_maps(coils, (size, size)).to(device)
    mask = equispaced_fraction_mask(size, 4, gen).mask.to(device)
    x = torch.randn(1, size, size, dtype=torch.complex64, generator=gen).to(device)
    y = torch.randn(1, coils, size, size, dtype=torch.complex64, generator=gen).to(device)
    y = torch.where(mask, y, torch.zeros((), dtype=y.dtype, device=device))
    return smaps, mask, x, y


def _identity(t):
    return t


def _candidates(
    smaps: torch.Tensor, mask: torch.Tensor, x: torch.Tensor, device: torch.device
) -> tuple[dict[str, Pair], list[str]]:
    zero = torch.zeros((), dtype=torch.complex64, device=device)

    def floor_fwd(x):
        return torch.where(mask, fft2c(x.unsqueeze(-3) * smaps), zero)

    def floor_adj(y):
        return (smaps.conj() * ifft2c(torch.where(mask, y, zero))).sum(dim=-3)

    def unshifted_fwd(x):
        return torch.where(mask, torch.fft.fft2(x.unsqueeze(-3) * smaps, norm="ortho"), zero)

    def unshifted_adj(y):
        return (smaps.conj() * torch.fft.ifft2(torch.where(mask, y, zero), norm="ortho")).sum(dim=-3)

    op = multicoil_mri(smaps, mask)
    found: dict[str, Pair] = {
        FLOOR: (floor_fwd, floor_adj, _identity, _identity),
        UNSHIFTED: (unshifted_fwd, unshifted_adj, _identity, _identity),
        "medrecon multicoil_mri": (op.forward, op.adjoint, _identity, _identity),
        NORMAL: (op.normal, _identity, _identity, _identity),
    }
    notes: list[str] = []
    for label, build in (("sigpy", _sigpy_pair), ("deepinv", _deepinv_pair)):
        try:
            name, pair = build(smaps, mask, device)
            fwd, adj, to_lib, _ = pair
            adj(fwd(to_lib(x)))  # fail here, not halfway through the timing
            found[name] = pair
        except ImportError as err:
            notes.append(f"{label} not available ({err}): skipped")
        except Exception as err:  # noqa: BLE001 - a peer failing must not lose the rest of the table
            notes.append(f"{label} failed ({type(err).__name__}: {err}): skipped")
    notes.append("mrpro FourierOp @ SensitivityOp is not run here (it needs mrpro's KData/trajectory objects); "
                 "peers.md measured it at 1.18x of the same floor")
    return found, notes


def _sigpy_pair(smaps: torch.Tensor, mask: torch.Tensor, device: torch.device) -> tuple[str, Pair]:
    import sigpy as sp
    import sigpy.mri as spmri

    on_gpu = device.type == "cuda"
    if on_gpu:
        import cupy

        sp_device = sp.Device(device.index or 0)
    else:
        sp_device = sp.cpu_device
    with sp_device:
        xp = sp_device.xp
        mps = xp.asarray(smaps.cpu().numpy())
        weights = xp.asarray(mask.expand(smaps.shape[-2:]).cpu().numpy().astype(np.float32))
        sense = spmri.linop.Sense(mps, weights=weights)

    def to_sigpy(t):
        return cupy.from_dlpack(t[0].contiguous()) if on_gpu else t[0].cpu().numpy()

    def from_sigpy(a):
        return (torch.from_dlpack(a) if on_gpu else torch.from_numpy(np.asarray(a)))[None].to(device)

    def sense_fwd(x):
        with sp_device:
            return sense * x

    def sense_adj(y):
        with sp_device:
            return sense.H * y

    return f"sigpy {sp.__version__} mri.linop.Sense", (sense_fwd, sense_adj, to_sigpy, from_sigpy)


def _deepinv_pair(smaps: torch.Tensor, mask: torch.Tensor, device: torch.device) -> tuple[str, Pair]:
    import deepinv

    physics = deepinv.physics.MultiCoilMRI(mask=mask.expand(smaps.shape[-2:]).float(), coil_maps=smaps,
                                           img_size=tuple(smaps.shape[-2:]), device=device)

    def dinv_in(t):
        return torch.view_as_real(t).movedim(-1, 1)

    def dinv_out(t):
        return torch.view_as_complex(t.movedim(1, -1).contiguous())

    return f"deepinv {deepinv.__version__} MultiCoilMRI", (physics.A, physics.A_adjoint, dinv_in, dinv_out)


def _time_pairs(pairs: dict[str, Pair], x: torch.Tensor, repeats: int, device: torch.device) -> dict[str, list[float]]:
    inputs = {name: pair[2](x) for name, pair in pairs.items()}
    times: dict[str, list[float]] = {name: [] for name in pairs}
    for name, (fwd, adj, _, _) in pairs.items():  # warm-up (plans, caches, JIT)
        adj(fwd(inputs[name]))
    for _ in range(repeats):
        for name, (fwd, adj, _, _) in pairs.items():
            _sync(device)
            start = time.perf_counter()
            adj(fwd(inputs[name]))
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def _adjoint_error(pair: Pair, x: torch.Tensor, y: torch.Tensor) -> float:
    fwd, adj, to_lib, from_lib = pair
    ax = from_lib(fwd(to_lib(x)))
    if ax.ndim == y.ndim - 1:
        ax = ax[None]
    aty = from_lib(adj(to_lib(y)))
    lhs = complex((ax.conj() * y).sum())
    rhs = complex((x.conj() * aty.reshape(x.shape)).sum())
    return abs(lhs - rhs) / max(abs(lhs), abs(rhs))


def _agreement(pair: Pair, reference: torch.Tensor, x: torch.Tensor) -> float:
    fwd, _, to_lib, from_lib = pair
    out = from_lib(fwd(to_lib(x))).reshape(reference.shape)
    return float((out - reference).abs().norm() / reference.abs().norm())


def _coil_map_rows(smaps: torch.Tensor, mask: torch.Tensor, device: torch.device, repeats: int) -> list[str]:
    gen = torch.Generator().manual_seed(1)
    axis = torch.linspace(-1, 1, smaps.shape[-1], device=device)
    radius2 = axis[:, None] ** 2 + axis[None, :] ** 2
    phase = torch.rand((), generator=gen).item()
    image = torch.polar(torch.exp(-4 * radius2) * (radius2 < 0.8), phase * radius2).to(torch.complex64)
    kspace = torch.where(mask, fft2c(image * smaps), torch.zeros((), dtype=torch.complex64, device=device))
    h, w = kspace.shape[-2:]
    n = min(32, h, w)  # a centred crop for the warm-up runs (DC stays at the centre)
    small = kspace[..., h // 2 - n // 2 : h // 2 - n // 2 + n, w // 2 - n // 2 : w // 2 - n // 2 + n]
    calib = min(24, center_columns(kspace), n)
    kernel = min(6, (calib + 1) // 2)
    title = (f"Coil maps, one slice ({smaps.shape[0]} coils, {h}x{w}, {calib}x{calib} calibration region of the "
             f"4x mask, ESPIRiT kernels {kernel}x{kernel}), device {device}:")
    rows = ["", title, "",
            "| method | median s |", "|---|---|"]
    timings = []
    for _ in range(max(3, repeats // 10)):
        _sync(device)
        start = time.perf_counter()
        lowres_maps(kspace, calib)
        _sync(device)
        timings.append(time.perf_counter() - start)
    rows.append(f"| medrecon lowres_maps (torch) | {statistics.median(timings):.4f} |")
    try:
        espirit_maps(small, calib, calib, kernel)  # warm-up
        _sync(device)
        start = time.perf_counter()
        espirit_maps(kspace, calib, calib, kernel)
        _sync(device)
        rows.append(f"| medrecon espirit_maps (torch, 1 run) | {time.perf_counter() - start:.2f} |")
    except ValueError as err:
        rows.append(f"| medrecon espirit_maps | failed ({err}) |")
    rows.append(_sigpy_espirit_row(kspace, small, calib, kernel, device))
    return rows


def _sigpy_espirit_row(
    kspace: torch.Tensor, small: torch.Tensor, calib: int, kernel: int, device: torch.device
) -> str:
    """sigpy's ``EspiritCalib`` on the same k-space, region and kernels (one timed run after a warm-up on
    ``small``), or a skipped row when sigpy (or cupy on CUDA) is missing or fails."""
    try:
        import sigpy as sp
        from sigpy.mri.app import EspiritCalib

        on_gpu = device.type == "cuda"
        if on_gpu:
            import cupy

            sp_device = sp.Device(device.index or 0)

            def to_sigpy(t):
                return cupy.from_dlpack(t.contiguous())

            sync = cupy.cuda.runtime.deviceSynchronize
        else:
            sp_device = sp.cpu_device

            def to_sigpy(t):
                return t.cpu().numpy()

            def sync():
                return None

        with sp_device:
            warm, ksp = to_sigpy(small), to_sigpy(kspace)
            EspiritCalib(warm, calib_width=calib, kernel_width=kernel, device=sp_device, show_pbar=False).run()
            sync()
            start = time.perf_counter()
            EspiritCalib(ksp, calib_width=calib, kernel_width=kernel, device=sp_device, show_pbar=False).run()
            sync()
        return f"| sigpy {sp.__version__} EspiritCalib (1 run) | {time.perf_counter() - start:.2f} |"
    except Exception as err:  # noqa: BLE001 - an optional peer failing must not lose the rest of the table
        return f"| sigpy EspiritCalib | skipped ({type(err).__name__}: {err}) |"


def main(args: argparse.Namespace) -> int:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    coils, size, repeats = args.coils, args.size, args.repeats
    if args.quick:
        coils, size, repeats = min(coils, 4), min(size, 64), min(repeats, 3)
    smaps, mask, x, y = _problem(coils, size, device)
    pairs, notes = _candidates(smaps, mask, x, device)
    reference = pairs["medrecon multicoil_mri"][0](x)
    times = _time_pairs(pairs, x, repeats, device)
    floor = statistics.median(times[FLOOR])
    header = (f"Forward+adjoint pair: {coils} coils, {size}x{size} complex64, 4x equispaced columns "
              f"({int(mask.sum())}/{size}), device {device}, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, {repeats} interleaved repeats.")
    lines = [
        header,
        "",
        "| implementation | median ms | min ms | ratio to floor | adjoint rel. err | fwd rel. diff vs medrecon |",
        "|---|---|---|---|---|---|",
    ]
    for name, pair in pairs.items():
        med, low = statistics.median(times[name]), min(times[name])
        agreement = "n/a" if name in (UNSHIFTED, NORMAL) else f"{_agreement(pair, reference, x):.1e}"
        adjoint = "n/a" if name == NORMAL else f"{_adjoint_error(pair, x, y):.1e}"
        lines.append(f"| {name} | {med * 1e3:.2f} | {low * 1e3:.2f} | {med / floor:.2f} | {adjoint} | {agreement} |")
    lines += [""] + [f"- {note}" for note in notes]
    if args.coil_maps:
        lines += _coil_map_rows(smaps, mask, device, repeats)
    table = "\n".join(lines)
    print(table)
    if args.out:
        from medrecon.files import atomic_path

        with atomic_path(args.out) as tmp:
            tmp.write_text(table + "\n")
    return 0
