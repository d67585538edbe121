"""The registry of public diffusion checkpoints (``data_manifests/public_prior_*.json``) and the import configs
``medrecon import-checkpoint --config`` reads: a registry entry's name, or a JSON file of the same schema::

    name                      the entry's name
    architecture              {"name": "adm" | "ncsnpp", "config": {...}}   (architectures.adm / .ncsnpp DEFAULTS)
    parameterization          "vp-eps" | "vp-x0" | "vp-v" (adm) or "ve-score" | "ve-x0" (ncsnpp)
    noise_schedule            vp: {"beta_schedule": "linear" | "cosine", "beta_start", "beta_end", "num_timesteps"};
                              ve: {} (sigma_min / sigma_max come from the architecture config)
    data                      {"modality", "image_size": [h, w], "complex": "none" | "channels" | "parts",
                               "data_range": [lo, hi], "network_units": {"scale", "offset"}}
    normalisation             the sidecar rule (medrecon.priors.meta)
    source                    {"format": "state_dict" | "score_sde", "weights": "ema" | "model" (score_sde),
                               "file", "url", "repository", "commit", "config", "sha256": published or null}
    licence, paper, description, notes   text, copied into the sidecar
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import read_json_object
from .architectures import SHORT_NAMES

__all__ = ["COMPLEX_LAYOUTS", "FORMATS", "import_config", "public_checkpoints", "registry_files"]

FORMATS = ("state_dict", "score_sde")
COMPLEX_LAYOUTS = ("none", "channels", "parts")
FAMILIES = {"adm": ("vp-eps", "vp-x0", "vp-v"), "ncsnpp": ("ve-score", "ve-x0")}
BETA_SCHEDULES = ("linear", "cosine")


def _manifest_dir() -> Path:
    from .checkpoint import MANIFEST_DIR

    return MANIFEST_DIR


def registry_files() -> list[Path]:
    """The registry's entry files, sorted."""
    return sorted(_manifest_dir().glob("public_prior_*.json"))


def _read(path: Path) -> dict[str, Any]:
    return read_json_object(path, "import config (a registry name or a JSON file)")


def public_checkpoints() -> dict[str, dict[str, Any]]:
    """Every registry entry by name, each checked as an import config."""
    entries = {}
    for path in registry_files():
        entry = _read(path)
        check_import_config(entry, str(path))
        entries[entry["name"]] = entry
    return entries


def import_config(name_or_path: str | Path) -> dict[str, Any]:
    """A registry entry by name, or a JSON import config file; checked (``ConfigError`` naming the field)."""
    text = str(name_or_path)
    path = Path(text)
    if not path.suffix and not path.exists():
        known = public_checkpoints()
        if text not in known:
            raise ConfigError(f"--config {text!r}: not a registry entry ({', '.join(sorted(known))}) nor a file")
        return known[text]
    entry = _read(path)
    check_import_config(entry, text)
    return entry


def _need(entry: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = entry.get(key)
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: {key} must be a {kind.__name__}, got {value!r}")
    return value


def check_import_config(entry: dict[str, Any], where: str) -> None:
    """``ConfigError`` (one line naming ``where`` and the field) unless ``entry`` follows the schema above."""
    _need(entry, "name", str, where)
    arch = _need(entry, "architecture", dict, where)
    name = arch.get("name")
    if name not in SHORT_NAMES:
        raise ConfigError(f"{where}: unknown architecture {name!r}; allowed: {sorted(SHORT_NAMES)}")
    config = _need(arch, "config", dict, f"{where}: architecture")
    p = entry.get("parameterization")
    if p not in FAMILIES[name]:
        raise ConfigError(f"{where}: unknown parameterization {p!r} for {name}; allowed: {list(FAMILIES[name])}")
    sched = _need(entry, "noise_schedule", dict, where)
    if p.startswith("vp-"):
        if sched.get("beta_schedule") not in BETA_SCHEDULES:
            raise ConfigError(f"{where}: noise_schedule.beta_schedule {sched.get('beta_schedule')!r}; allowed: "
                              f"{list(BETA_SCHEDULES)}")
        if not isinstance(sched.get("num_timesteps"), int) or sched["num_timesteps"] < 2:
            raise ConfigError(f"{where}: noise_schedule.num_timesteps must be an integer >= 2")
    data = _need(entry, "data", dict, where)
    layout = data.get("complex")
    if layout not in COMPLEX_LAYOUTS:
        raise ConfigError(f"{where}: data.complex {layout!r}; allowed: {list(COMPLEX_LAYOUTS)}")
    channels = config.get("in_channels" if name == "adm" else "num_channels", 1)
    want = 2 if layout == "channels" else 1
    if channels != want:
        raise ConfigError(f"{where}: data.complex {layout!r} needs {want} network channel(s), the architecture "
                          f"config has {channels}")
    size = data.get("image_size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise ConfigError(f"{where}: data.image_size must be [h, w], got {size!r}")
    if data.get("modality") not in ("mri", "ct"):
        raise ConfigError(f"{where}: data.modality {data.get('modality')!r}; allowed: ['mri', 'ct']")
    units = data.get("network_units", {"scale": 1.0, "offset": 0.0})
    if not (isinstance(units, dict) and isinstance(units.get("scale"), (int, float)) and units["scale"] > 0):
        raise ConfigError(f"{where}: data.network_units must be {{\"scale\": > 0, \"offset\": number}}")
    source = _need(entry, "source", dict, where)
    if source.get("format") not in FORMATS:
        raise ConfigError(f"{where}: source.format {source.get('format')!r}; allowed: {list(FORMATS)}")
    if source["format"] == "score_sde" and source.get("weights", "ema") not in ("ema", "model"):
        raise ConfigError(f"{where}: source.weights {source.get('weights')!r}; allowed: ['ema', 'model']")
    sha = source.get("sha256")
    if sha is not None and not (isinstance(sha, str) and len(sha) == 64):
        raise ConfigError(f"{where}: source.sha256 must be 64 hex digits or null, got {sha!r}")
