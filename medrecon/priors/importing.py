"""Convert a public checkpoint (a ``.pt``/``.pth`` state dict or score_sde training state) into a medrecon prior:
safetensors weights + a sidecar that ``load_prior`` reads like the shipped priors.

Nothing is unpickled: the file is read with ``torch.load(weights_only=True)`` (which refuses any pickled object that
is not a tensor or a plain container) and then every weight must be a plain dense tensor. Names and shapes are
checked against the architecture built from the import config (``medrecon.priors.public``) before anything is
written; any problem is one ``InputError`` / ``ChecksumError`` line and no file is created.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import ChecksumError, InputError
from ..files import sha256_file
from ..schedules import vp_alpha_bar, vp_alpha_bar_to_sigma, vp_cosine_alpha_bar
from .architectures import SHORT_NAMES, architecture
from .checkpoint import save_checkpoint

__all__ = ["import_checkpoint", "load_weights_only", "match_architecture", "plain_state", "sidecar_meta",
           "source_state"]

MAX_LISTED = 5
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def load_weights_only(path: str | Path) -> Any:
    """The object in a torch file, read with ``weights_only=True`` on the CPU (``InputError`` for anything that
    needs code to unpickle, or a file torch cannot read)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(path, f"refused: the file holds pickled objects other than tensors and plain containers "
                               f"({first}); nothing in it was run") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, AttributeError, TypeError) as err:
        raise InputError(path, f"not a readable torch weights file ({type(err).__name__}: {err})") from None


def _is_plain(value: Any) -> bool:
    return (type(value) in (torch.Tensor, torch.nn.Parameter) and value.layout == torch.strided
            and not value.is_quantized and not value.is_complex() and value.device.type == "cpu"
            and (value.is_floating_point() or value.dtype in (torch.int64, torch.int32, torch.bool)))


def plain_state(obj: Any, path: str | Path, where: str = "") -> dict[str, torch.Tensor]:
    """``obj`` as ``{name: tensor}`` if it is a mapping of string names to plain dense real CPU tensors;
    ``InputError`` naming the first offending entry otherwise."""
    label = f" {where}" if where else ""
    if not isinstance(obj, dict) or not obj:
        raise InputError(path, f"expected a non-empty state dict{label} ({{name: tensor}}), got "
                               f"{type(obj).__name__}")
    for name, value in obj.items():
        if not isinstance(name, str):
            raise InputError(path, f"state dict{label} has a non-string key {name!r}")
        if not _is_plain(value):
            kind = type(value).__name__ if not isinstance(value, torch.Tensor) else f"{value.layout} {value.dtype}"
            raise InputError(path, f"entry {name!r}{label} is {kind}, not a plain dense tensor")
    return {k: v.detach() for k, v in obj.items()}


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DataParallel's ``module.`` prefix when every name has it."""
    if all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def source_state(obj: Any, source: dict[str, Any], path: str | Path,
                 trainable: list[str]) -> dict[str, torch.Tensor]:
    """The weights of a loaded checkpoint per the config's ``source``: ``state_dict`` (the object itself) or
    ``score_sde`` (``obj["model"]``, with ``weights = "ema"`` its trainable parameters replaced in order by
    ``obj["ema"]["shadow_params"]``, as score_sde's ``ema.copy_to`` does). ``trainable``: the architecture's
    trainable parameter names, which the EMA list follows (in the checkpoint's own name order)."""
    if source["format"] == "state_dict":
        return _strip_prefix(plain_state(obj, path))
    if not isinstance(obj, dict) or "model" not in obj:
        raise InputError(path, "a score_sde checkpoint is a dict with 'model' (and 'ema'); got "
                               f"{type(obj).__name__} with keys {sorted(obj)[:5] if isinstance(obj, dict) else []}")
    state = _strip_prefix(plain_state(obj["model"], path, "'model'"))
    if source.get("weights", "ema") == "model":
        return state
    ema = obj.get("ema")
    shadow = ema.get("shadow_params") if isinstance(ema, dict) else None
    if not isinstance(shadow, list):
        raise InputError(path, "no EMA weights ('ema' -> 'shadow_params' list); set source.weights = \"model\" "
                               "to import the raw weights")
    wanted = set(trainable)
    names = [k for k in state if k in wanted]
    if len(shadow) != len(names):
        raise InputError(path, f"{len(shadow)} EMA tensors for {len(names)} trainable parameters of the "
                               "architecture; the checkpoint does not fit this config")
    for i, (name, value) in enumerate(zip(names, shadow)):
        if not _is_plain(value):
            raise InputError(path, f"EMA entry {i} is {type(value).__name__}, not a plain dense tensor")
        if value.shape != state[name].shape:
            raise InputError(path, f"EMA entry {i} has shape {tuple(value.shape)} but {name!r} has "
                                   f"{tuple(state[name].shape)}")
        state[name] = value.detach()
    return state


def match_architecture(state: dict[str, torch.Tensor], expected: dict[str, torch.Size]) -> list[str]:
    """Differences between a state dict's names/shapes and the architecture's: missing names, unexpected names,
    then shape mismatches (each as one short phrase, in the architecture's order)."""
    diffs = [f"missing {k}" for k in expected if k not in state]
    diffs += [f"unexpected {k}" for k in state if k not in expected]
    diffs += [f"{k} has shape {tuple(v.shape)}, expected {tuple(expected[k])}"
              for k, v in state.items() if k in expected and v.shape != expected[k]]
    return diffs


def _alphas_cumprod(sched: dict[str, Any]) -> torch.Tensor:
    steps = int(sched["num_timesteps"])
    if sched["beta_schedule"] == "cosine":
        return vp_cosine_alpha_bar(steps)
    return vp_alpha_bar(float(sched.get("beta_start", 1e-4)), float(sched.get("beta_end", 0.02)), steps)


def sidecar_meta(entry: dict[str, Any], config: dict[str, Any], src: Path, digest: str,
                 n_params: int) -> dict[str, Any]:
    """The sidecar fields (all but ``format``/``weights``) of a checkpoint imported with ``entry``.

    ``noise_schedule.sigma_min/sigma_max`` are in prior units (the network's divided by ``network_units.scale``);
    ``alphas_cumprod`` (VP) is the network's own table.
    """
    data, short = entry["data"], entry["architecture"]["name"]
    units = {"scale": 1.0, "offset": 0.0, **data.get("network_units", {})}
    scale = float(units["scale"])
    if entry["parameterization"].startswith("vp-"):
        ab = _alphas_cumprod(entry["noise_schedule"])
        sig = vp_alpha_bar_to_sigma(ab)
        schedule = {**entry["noise_schedule"], "sigma_min": float(sig[0]) / scale, "sigma_max": float(sig[-1]) / scale,
                    "alphas_cumprod": [float(v) for v in ab]}
    else:
        schedule = {**entry["noise_schedule"], "sigma_min": float(config["sigma_min"]) / scale,
                    "sigma_max": float(config["sigma_max"]) / scale, "noise_input": "sigma"}
    layout = data["complex"]
    meta: dict[str, Any] = {
        "architecture": {"name": SHORT_NAMES[short], "config": config, "parameters": n_params},
        "parameterization": entry["parameterization"],
        "noise_schedule": schedule,
        "network_units": {"scale": scale, "offset": float(units["offset"])},
        "data_range": list(data.get("data_range", [0.0, 1.0])),
        "channels": 2 if layout == "channels" else 1,
        "complex": layout != "none",
        "image_size": list(data["image_size"]),
        "modality": data["modality"],
        "normalisation": entry.get("normalisation", {"rule": "percentile", "percentile": 100.0, "value": 1.0}),
        "source": {**entry.get("source", {}), "file": src.name, "sha256": digest, "registry": entry["name"]},
        "licence": entry.get("licence", "not stated"),
        "training": {"objective": "imported", "paper": entry.get("paper", ""), "notes": entry.get("notes", "")},
    }
    if layout != "none":
        meta["complex_mode"] = layout
    if short == "adm" and config["learn_sigma"]:
        meta["learned_variance"] = True
    return meta


def import_checkpoint(src: str | Path, entry: dict[str, Any], out: str | Path, dtype: str = "float32",
                      arch: str | None = None) -> Path:
    """Convert ``src`` with the checked import config ``entry``; write ``<out>.safetensors`` and ``<out>.json``
    and return the sidecar. ``arch``: the architecture the caller expects (``adm`` / ``ncsnpp``), checked against
    the config. Nothing is written unless every check passes."""
    src, out = Path(src), Path(out)
    if out.suffix in (".json", ".safetensors"):
        out = out.with_suffix("")
    short = entry["architecture"]["name"]
    if arch is not None and arch != short:
        if arch not in SHORT_NAMES:
            raise InputError(src, f"unknown architecture {arch!r}; allowed: {sorted(SHORT_NAMES)}", "--arch")
        raise InputError(src, f"--arch {arch} but the config {entry['name']!r} is for {short}", "--arch")
    if dtype not in DTYPES:
        raise InputError(src, f"unknown dtype {dtype!r}; allowed: {list(DTYPES)}", "--dtype")
    if not src.is_file():
        raise InputError(src, "checkpoint file not found")
    digest = sha256_file(src)
    published = entry["source"].get("sha256")
    if published is not None and digest != published.lower():
        raise ChecksumError(src, f"sha256 {digest} does not match {published} published for {entry['name']!r}",
                            "sha256")
    spec = architecture(short)
    try:
        with torch.device("meta"):
            net = spec.build(entry["architecture"]["config"])
    except (ValueError, TypeError, KeyError) as err:
        raise InputError(src, f"invalid {short} config in {entry['name']!r} ({err})", "architecture.config") from None
    config = dict(net.config)
    expected = {k: v.shape for k, v in net.state_dict().items()}
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    obj = load_weights_only(src)
    state = source_state(obj, entry["source"], src, trainable)
    try:
        state = spec.source_buffers(state, config)
    except ValueError as err:
        raise InputError(src, str(err), "sigmas") from None
    diffs = match_architecture(state, expected)
    if diffs:
        more = f" (+{len(diffs) - MAX_LISTED} more)" if len(diffs) > MAX_LISTED else ""
        raise InputError(src, f"names or shapes do not match {spec.name} with the config of {entry['name']!r}: "
                              + "; ".join(diffs[:MAX_LISTED]) + more)
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise InputError(src, f"tensor {name!r} holds NaN or infinite values")
    ordered = {k: state[k] for k in expected}
    meta = sidecar_meta(entry, config, src, digest, sum(p.numel() for p in net.parameters()))
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(out, ordered, meta, dtype=DTYPES[dtype])
