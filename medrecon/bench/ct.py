"""``medrecon bench ct``: CT forward+adjoint time and adjoint error, medrecon vs scikit-image, astra, deepinv.

Cases: a 2D image and a slice stack, for a full geometry (256 x 256, 180 views over [0, 180), 363 cells) and an
8-view sparse one; then medrecon's per-slice time as the stack grows. Repeats are interleaved across methods;
times are medians of forward+adjoint of one call (per slice for stacks: call time / slices). Two adjoint errors
for standard normal ``x, y``: ``|<A x, y> - <x, A^T y>| / max(|<A x, y>|, |<x, A^T y>|)`` (strict: for random
inputs the dot product is about ``sqrt(size)`` times smaller than the norms) and the same difference divided by
``||A x|| ||y||`` (scale-free). ``A x`` and ``A^T y`` are computed in each library's own precision (float32 for
medrecon, astra and deepinv, float64 for scikit-image) and the inner products are accumulated in float64, so
float32 storage round-off counts but the round-off of a float32 dot product does not. scikit-image's adjoint is
``iradon(filter_name=None) * 2 N / pi``.
Optional peers (astra-toolbox, deepinv) are skipped with a printed note when not importable.
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from operators.ct import parallel_beam, sparse_view_angles

Pair = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=256, help="image size N (N x N pixels)")
    parser.add_argument("--views", type=int, default=180, help="views of the full geometry")
    parser.add_argument("--sparse-views", type=int, default=8, help="views of the sparse geometry")
    parser.add_argument("--slices", type=int, default=64, help="slices of the stack case")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repeats per method")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _medrecon(n: int, angles: tuple[float, ...], n_det: int, device: str):
    t0 = time.perf_counter()
    op = parallel_beam(n, angles, n_det=n_det).to(device)
    build = time.perf_counter() - t0

    def fwd(x: np.ndarray) -> np.ndarray:
        return op(torch.from_numpy(x).float().to(device)).double().cpu().numpy()

    def adj(y: np.ndarray) -> np.ndarray:
        return op.adjoint(torch.from_numpy(y).float().to(device)).double().cpu().numpy()

    def run(x: torch.Tensor) -> None:
        op.adjoint(op(x))
        _sync(device)

    return op, build, (fwd, adj), run


def _skimage(n: int, angles: tuple[float, ...], n_det: int):
    from skimage.transform import iradon, radon

    theta = np.asarray(angles)

    def fwd(x: np.ndarray) -> np.ndarray:
        return radon(x, theta, circle=False).T

    def adj(y: np.ndarray) -> np.ndarray:
        return iradon(y.T, theta, output_size=n, filter_name=None, circle=False) * 2 * len(theta) / math.pi

    return fwd, adj


def _astra(n: int, angles: tuple[float, ...], n_det: int):
    import astra

    vol = astra.create_vol_geom(n, n)
    proj = astra.create_proj_geom("parallel", 1.0, n_det, np.deg2rad(np.asarray(angles)))
    pid = astra.create_projector("linear", proj, vol)
    op = astra.OpTomo(pid)

    def fwd(x: np.ndarray) -> np.ndarray:
        return np.asarray(op.FP(x.astype(np.float32)), dtype=np.float64)

    def adj(y: np.ndarray) -> np.ndarray:
        return np.asarray(op.BP(y.astype(np.float32)), dtype=np.float64)

    return fwd, adj


def _deepinv(n: int, angles: tuple[float, ...], n_det: int, device: str):
    from deepinv.physics import Tomography

    phys = Tomography(angles=torch.tensor(angles, dtype=torch.float32), img_width=n, circle=False, device=device,
                      adjoint_via_backprop=True)

    def fwd(x: np.ndarray) -> np.ndarray:
        return phys.A(torch.from_numpy(x).float().to(device)[None, None])[0, 0].double().cpu().numpy().T

    def adj(y: np.ndarray) -> np.ndarray:
        return phys.A_adjoint(torch.from_numpy(y.T.copy()).float().to(device)[None, None])[0, 0].double().cpu().numpy()

    return fwd, adj


def adjoint_error(fwd: Callable, adj: Callable, n: int, gen: np.random.Generator) -> tuple[float, float]:
    """Dot-test errors relative to the dot product and to ``||A x|| ||y||`` (see the module docstring)."""
    x = gen.standard_normal((n, n)).astype(np.float32).astype(np.float64)
    ax = fwd(x)
    y = gen.standard_normal(ax.shape).astype(np.float32).astype(np.float64)
    lhs, rhs = float(np.vdot(ax, y)), float(np.vdot(x, adj(y)))
    diff = abs(lhs - rhs)
    return diff / max(abs(lhs), abs(rhs)), diff / float(np.linalg.norm(ax) * np.linalg.norm(y))


def _slice_loop(pair: Pair) -> Callable[[np.ndarray], None]:
    fwd, adj = pair

    def run(stack: np.ndarray) -> None:
        for sl in stack:
            adj(fwd(sl))

    return run


def _timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _case_rows(n: int, angles: tuple[float, ...], n_det: int, slices: int, repeats: int, device: str,
               notes: list[str]) -> list[list[str]]:
    gen = np.random.default_rng(0)
    op, build, pair, run = _medrecon(n, angles, n_det, device)
    methods: dict[str, Pair] = {f"medrecon ({device})": pair}
    builders = {"scikit-image radon/iradon": lambda: _skimage(n, angles, n_det),
                "astra-toolbox CPU (linear)": lambda: _astra(n, angles, n_det),
                "deepinv Tomography": lambda: _deepinv(n, angles, n_det, device)}
    for name, make in builders.items():
        try:
            methods[name] = make()
        except ImportError as err:
            note = f"{name} skipped: not importable ({err.name or err})"
            if note not in notes:
                notes.append(note)
                print(note)
    errors = {name: adjoint_error(f, a, n, gen) for name, (f, a) in methods.items()}
    img = gen.standard_normal((n, n)).astype(np.float32)
    stack = gen.standard_normal((slices, n, n)).astype(np.float32)
    x2d = torch.from_numpy(img)[None].to(device)
    x3d = torch.from_numpy(stack)[None].to(device)
    calls: dict[tuple[str, str], Callable[[], None]] = {}
    for name, p in methods.items():
        if name.startswith("medrecon"):
            calls[(name, "2D")] = lambda: run(x2d)
            calls[(name, "stack")] = lambda: run(x3d)
        else:
            calls[(name, "2D")] = (lambda f=p[0], a=p[1]: (a(f(img.astype(np.float64))), None)[1])
            loop = _slice_loop(p)
            calls[(name, "stack")] = (lambda r=loop: r(stack.astype(np.float64)))
    for fn in calls.values():  # warm-up
        fn()
    times: dict[tuple[str, str], list[float]] = {k: [] for k in calls}
    for _ in range(repeats):
        for key, fn in calls.items():
            times[key].append(_timed(fn))
    rows = []
    geom = f"{n}x{n}, {len(angles)} views, {n_det} det"
    for name in methods:
        t2 = statistics.median(times[(name, "2D")]) * 1e3
        t3 = statistics.median(times[(name, "stack")]) * 1e3 / slices
        extra = f"build {build:.2f} s, {op.memory_bytes() / 2**20:.0f} MiB" if name.startswith("medrecon") else ""
        strict, scaled = errors[name]
        rows.append([geom, name, f"{t2:.1f}", f"{t3:.1f}", f"{strict:.1e}", f"{scaled:.1e}", extra])
    return rows


def _stack_sweep(n: int, angles: tuple[float, ...], n_det: int, sizes: list[int], repeats: int, device: str
                 ) -> list[list[str]]:
    _, _, _, run = _medrecon(n, angles, n_det, device)
    gen = torch.Generator().manual_seed(0)
    xs = {d: torch.randn(1, d, n, n, generator=gen).to(device) for d in sizes}
    for d in sizes:
        run(xs[d])
    times: dict[int, list[float]] = {d: [] for d in sizes}
    for _ in range(repeats):
        for d in sizes:
            times[d].append(_timed(lambda d=d: run(xs[d])))
    return [[str(d), f"{statistics.median(times[d]) * 1e3:.1f}", f"{statistics.median(times[d]) * 1e3 / d:.2f}"]
            for d in sizes]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    n, views, sparse, slices, repeats = args.size, args.views, args.sparse_views, args.slices, args.repeats
    if args.quick:
        n, views, slices, repeats = 64, 45, 8, 3
    n_det = math.ceil(n * math.sqrt(2))
    notes: list[str] = []
    rows = []
    for angles in (sparse_view_angles(views), sparse_view_angles(sparse)):
        rows += _case_rows(n, angles, n_det, slices, repeats, args.device, notes)
    sizes = [d for d in (1, 4, 16, 64) if d <= max(slices, 1)]
    sweep = _stack_sweep(n, sparse_view_angles(views), n_det, sizes, repeats, args.device)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    text = "\n".join([
        (f"### CT projectors, forward + adjoint ({device_name}, torch {torch.__version__}, "
         f"{torch.get_num_threads()} threads, median of {repeats} interleaved repeats)"),
        "",
        _table(["geometry", "method", "2D ms", f"{slices}-slice stack ms/slice", "adjoint err (dot)",
                "adjoint err (norms)", "notes"], rows),
        "",
        f"### medrecon per-slice time vs stack size ({n}x{n}, {views} views, {n_det} det, {device_name})",
        "",
        _table(["slices", "ms per call", "ms per slice"], sweep),
        "",
        *[f"- {note}" for note in notes],
    ])
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0
