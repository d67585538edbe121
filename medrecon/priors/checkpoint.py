"""Prior checkpoints: safetensors weights + a JSON sidecar; loading verifies sha256 and never unpickles.

Sidecar ``<stem>.json`` (format ``medrecon-prior/1``)::

    weights, weights_sha256        file name next to the sidecar and its sha256
    architecture                   {"name": one of architectures.ARCHITECTURES, "config": {...}}
    parameterization               "edm" | "vp-eps" | "vp-x0" | "vp-v" | "ve-score" | "ve-x0"
    preconditioning                {"sigma_data", "c_noise_scale"}         (edm)
    noise_schedule                 {"sigma_min", "sigma_max"} in prior units (+ "alphas_cumprod" for vp-*)
    network_units                  optional {"scale", "offset"}: the network sees scale * x + offset
    data_range, channels, complex, image_size, modality
    complex_mode                   optional, for complex priors: "channels" (default; 2 network channels) or
                                   "parts" (a 1-channel network on the real and imaginary parts)
    learned_variance               optional: the network also outputs a variance (2C channels; eps is the first C)
    source                         optional, imported checkpoints: {"file", "sha256", "repository", ...}
    training                       {"objective", "data_manifest", "data_sha256", "command", "medrecon_version", ...}

``load_prior("mri" | "ct" | path)`` returns a ``Denoiser`` on images ``(B, H, W)`` (complex64 for complex priors,
float32 otherwise) with the sidecar as its ``meta`` attribute.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ChecksumError, InputError
from ..files import atomic_path, read_json_object, sha256_file
from .adapters import (
    AddChannel,
    ComplexAsChannels,
    ComplexParts,
    EDMDenoiser,
    PadToMultiple,
    Rescaled,
    SlidingWindow,
    VEDenoiser,
    VPDenoiser,
)
from .architectures import architecture
from .meta import served_shapes

__all__ = [
    "DEFAULT_DIR",
    "FORMAT",
    "MANIFEST_DIR",
    "PARAMETERIZATIONS",
    "SHIPPED",
    "default_prior",
    "load_prior",
    "network_denoiser",
    "read_prior_weights",
    "read_sidecar",
    "save_checkpoint",
    "weights_path",
    "wrap_network",
]

FORMAT = "medrecon-prior/1"
PARAMETERIZATIONS = ("edm", "vp-eps", "vp-x0", "vp-v", "ve-score", "ve-x0")
REQUIRED = ("format", "weights", "weights_sha256", "architecture", "parameterization", "noise_schedule",
            "data_range", "channels", "complex", "image_size")
DEFAULT_DIR = Path(__file__).resolve().parent / "default"
MANIFEST_DIR = Path(__file__).resolve().parents[2] / "data_manifests"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle", ".tar")
COMPLEX_MODES = ("channels", "parts")
SHIPPED = {"mri": "mri", "mri_native": "mri", "ct": "ct", "ct_head": "ct", "ct_head_native": "ct"}  # shipped prior name -> modality; "mri" / "ct" are defaults


def save_checkpoint(stem: str | Path, state_dict: dict[str, torch.Tensor], meta: dict[str, Any],
                    dtype: torch.dtype = torch.float16) -> Path:
    """Write ``<stem>.safetensors`` (floating tensors cast to ``dtype``) and ``<stem>.json``; return the sidecar."""
    from safetensors.torch import save_file

    stem = Path(stem)
    weights = stem.with_suffix(".safetensors")
    tensors = {k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu()).contiguous()
               for k, v in state_dict.items()}
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
    sidecar = {**meta, "format": FORMAT, "weights": weights.name, "weights_sha256": sha256_file(weights)}
    with atomic_path(stem.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    return stem.with_suffix(".json")


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """Read and check a sidecar JSON (required fields, known parameterization)."""
    path = Path(path)
    meta = read_json_object(path, "checkpoint sidecar")
    for key in REQUIRED:
        if key not in meta:
            raise InputError(path, "missing field", key)
    if meta["format"] != FORMAT:
        raise InputError(path, f"unsupported format {meta['format']!r} (expected {FORMAT!r})", "format")
    if meta["parameterization"] not in PARAMETERIZATIONS:
        raise InputError(path, f"unknown value {meta['parameterization']!r}; allowed: {list(PARAMETERIZATIONS)}",
                         "parameterization")
    if meta.get("complex_mode", "channels") not in COMPLEX_MODES:
        raise InputError(path, f"unknown value {meta['complex_mode']!r}; allowed: {list(COMPLEX_MODES)}",
                         "complex_mode")
    units = meta.get("network_units")
    if units is not None and not (isinstance(units, dict) and isinstance(units.get("scale"), (int, float))
                                  and units["scale"] > 0 and isinstance(units.get("offset", 0.0), (int, float))):
        raise InputError(path, f"expected {{\"scale\": > 0, \"offset\": number}}, got {units!r}", "network_units")
    return meta


def _resolve(name_or_path: str | Path) -> tuple[Path, str | None]:
    """Sidecar path and, for a shipped prior's name, the expected sha256 from ``data_manifests/``."""
    text = str(name_or_path)
    if text in SHIPPED:
        sidecar = DEFAULT_DIR / f"{text}.json"
        manifest = MANIFEST_DIR / f"prior_{text}_default.json"
        expected = None
        if manifest.exists():
            try:
                expected = json.loads(manifest.read_text())["sha256"]
            except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
                raise InputError(manifest, f"unreadable prior manifest ({err})", "sha256") from None
        if not sidecar.exists():
            raise InputError(sidecar, f"the default {text} prior is not installed")
        return sidecar, expected
    path = Path(text)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise InputError(path, "pickled checkpoints are never loaded; convert the weights to safetensors and "
                               "write a JSON sidecar (see docs/priors.md)")
    if path.is_dir():
        sidecars = sorted(path.glob("*.json"))
        sidecars = [p for p in sidecars if p.with_suffix(".safetensors").exists()]
        if len(sidecars) != 1:
            raise InputError(path, f"expected exactly one <name>.json + <name>.safetensors pair, found "
                                   f"{len(sidecars)}")
        return sidecars[0], None
    if path.suffix == ".safetensors":
        return path.with_suffix(".json"), None
    if path.suffix == ".json":
        return path, None
    raise InputError(path, f"not a prior name ({', '.join(map(repr, SHIPPED))}), a sidecar .json, a .safetensors "
                           "file or a directory")


def weights_path(sidecar: Path, name: Any) -> Path:
    """The weights file a sidecar names: a relative path inside the sidecar's folder (``InputError`` for an
    absolute path, ``..`` or anything else that leaves the folder)."""
    if not isinstance(name, str) or not name.strip() or "\x00" in name:
        raise InputError(sidecar, f"expected a file name next to the sidecar, got {name!r}", "weights")
    rel = Path(name)
    if rel.is_absolute() or rel.drive or ".." in rel.parts or ".." in Path(name.replace("\\", "/")).parts:
        raise InputError(sidecar, f"{name!r} points outside the sidecar's folder; the weights must lie beside it",
                         "weights")
    folder = sidecar.parent.resolve()
    weights = folder / rel
    if not weights.resolve().is_relative_to(folder) and not weights.is_symlink():
        raise InputError(sidecar, f"{name!r} points outside the sidecar's folder", "weights")
    return weights


def network_denoiser(meta: dict[str, Any], net: nn.Module) -> nn.Module:
    """The channel-space ``D(x (B, C, H, W), sigma)`` for a network and its sidecar."""
    p = meta["parameterization"]
    if p == "edm":
        pre = meta.get("preconditioning", {})
        return EDMDenoiser(net, sigma_data=pre["sigma_data"], c_noise_scale=pre.get("c_noise_scale", 1.0))
    if p.startswith("vp-"):
        ab = torch.tensor(meta["noise_schedule"]["alphas_cumprod"], dtype=torch.float64)
        return VPDenoiser(net, ab, prediction=p[3:])
    return VEDenoiser(net, prediction=p[3:], noise_input=meta["noise_schedule"].get("noise_input", "sigma"))


def read_prior_weights(name_or_path: str | Path) -> tuple[Path, dict[str, Any], dict[str, torch.Tensor], Path]:
    """A prior's sidecar path, sidecar, weights (CPU tensors) and weights path, every check of ``load_prior``
    done: the weights file exists, its sha256 matches the sidecar and the shipped manifest (``ChecksumError``),
    it is a safetensors file (nothing is unpickled) and its floating tensors are finite (``InputError``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    sidecar, expected = _resolve(name_or_path)
    meta = read_sidecar(sidecar)
    weights = weights_path(sidecar, meta["weights"])
    if not weights.exists():
        raise InputError(weights, "weights file named by the sidecar is missing", "weights")
    digest = sha256_file(weights)
    for want, where in ((meta["weights_sha256"], sidecar), (expected, MANIFEST_DIR)):
        if want is not None and digest != want:
            raise ChecksumError(weights, f"sha256 {digest} does not match {want} recorded in {where}",
                                "weights_sha256")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError(weights, f"not a valid safetensors file ({err})") from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise InputError(weights, f"tensor {name!r} holds NaN or infinite values", "weights")
    return sidecar, meta, state, weights


def load_prior(name_or_path: str | Path, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32, window: int | tuple[int, int] | None = None) -> nn.Module:
    """Load a prior as a ``Denoiser`` on ``(B, H, W)`` images (complex64 if the prior is complex).

    ``name_or_path``: ``"mri"``/``"ct"``/``"ct_head"`` (shipped priors, checked against
    ``data_manifests/prior_<name>_default.json`` when present), a sidecar ``.json``, its ``.safetensors`` or a directory holding one pair. The weights' sha256
    must match the sidecar (``ChecksumError`` otherwise); pickled files are refused (``InputError``).
    ``window``: the side(s) of the windows larger grids are denoised in (``SlidingWindow``); ``None`` keeps the
    sidecar's ``serves.window``, ``0`` runs every grid in one pass.
    """
    sidecar, meta, state, weights = read_prior_weights(name_or_path)
    if window is not None:
        fallback = {} if meta.get("image_size") is None else {"min_size": meta["image_size"],
                                                                "max_size": meta["image_size"]}
        serves = {k: v for k, v in (meta.get("serves") or fallback).items() if k != "window"}
        if window != 0:
            serves["window"] = list(window) if isinstance(window, (tuple, list)) else [int(window)] * 2
        meta = {**meta, "serves": serves}
        served_shapes(meta)  # checks the new window
    arch = meta["architecture"] if isinstance(meta["architecture"], dict) else {}
    try:
        spec = architecture(str(arch.get("name")))
    except KeyError as err:
        raise InputError(sidecar, str(err.args[0]), "architecture.name") from None
    try:
        net = spec.build(arch.get("config", {}))
    except (ValueError, TypeError, KeyError) as err:
        raise InputError(sidecar, f"invalid architecture config ({err})", "architecture.config") from None
    try:
        net.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as err:
        raise InputError(weights, f"weights do not fit the architecture in the sidecar ({err})") from None
    net = net.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return wrap_network(meta, spec.network(net)).to(device)


def wrap_network(meta: dict[str, Any], net: nn.Module) -> nn.Module:
    """The ``Denoiser`` on ``(B, H, W)`` images of a network called as its architecture entry says, for its sidecar:
    the parameterisation's adapter, then ``network_units`` (``Rescaled``), padding to the sidecar's
    ``serves.multiple_of`` when ``serves.pad`` (``PadToMultiple``), windows of ``serves.window`` on larger grids
    up to ``serves.window_sigma_max`` (``SlidingWindow``), then the complex layout (``ComplexAsChannels``,
    ``ComplexParts``) or ``AddChannel``. The sidecar becomes its ``meta``."""
    inner = network_denoiser(meta, net)
    units = meta.get("network_units")
    if units is not None and (units["scale"], units.get("offset", 0.0)) != (1, 0):
        inner = Rescaled(inner, units["scale"], units.get("offset", 0.0))
    served = served_shapes(meta)
    if served is not None and served.pad and served.multiple_of != (1, 1):
        inner = PadToMultiple(inner, served.multiple_of)
    if served is not None and served.window is not None:
        inner = SlidingWindow(inner, served.window, sigma_max=served.window_sigma_max)
    if meta["complex"] and meta.get("complex_mode", "channels") == "parts":
        outer = ComplexParts(AddChannel(inner))
    elif meta["complex"]:
        outer = ComplexAsChannels(inner)
    else:
        outer = AddChannel(inner)
    outer.meta = meta
    return outer


def default_prior(modality: str, device: str | torch.device = "cpu", name: str | None = None,
                  window: int | tuple[int, int] | None = None) -> nn.Module:
    """The shipped prior for ``"mri"`` (complex 128x128 brain) or ``"ct"`` (128x128, HU window [-1000, 1000]);
    ``name`` picks another shipped prior of that modality (``SHIPPED``: ``"mri_native"``, MR at 0.6-2.04 mm
    pixels; ``"ct_head"``, the CT prior fine-tuned on head CT; ``"ct_head_native"``, head CT at 0.45-1.2 mm);
    ``window`` as for ``load_prior``."""
    if modality not in ("mri", "ct"):
        raise ValueError(f"modality must be 'mri' or 'ct', got {modality!r}")
    name = name or modality
    if SHIPPED.get(name) != modality:
        raise ValueError(f"no shipped {modality} prior named {name!r}; "
                         f"shipped: {[n for n, m in SHIPPED.items() if m == modality]}")
    return load_prior(name, device, window=window)
