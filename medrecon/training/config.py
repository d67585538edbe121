"""Training configuration of ``medrecon train-prior``: the TOML schema, its defaults and validation."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError
from ..priors.network import UNET_KEYS

__all__ = ["CHOICES", "SCHEMA", "load_config", "validate_config"]

# section -> key -> (type(s), default); a default of ... marks a required key.
SCHEMA: dict[str, dict[str, tuple[Any, Any]]] = {
    "": {"name": (str, ...), "modality": (str, ...)},
    "data": {
        "source": (str, "npy"), "path": (str, ""), "sha256": (str, ""), "manifest": (str, ""),
        "augment": (bool, True), "image_size": (int, 128), "heldout": (str, ""), "slice_axis": (int, 2),
        "crop": (int, 0), "pixel_spacing_mm": (list, []),
    },
    "model": {k: ((int, list), None) for k in UNET_KEYS if k not in ("in_channels", "out_channels")},
    "train": {
        "objective": (str, "edm"), "batch_size": (int, 32), "lr": (float, 2e-4), "weight_decay": (float, 0.0),
        "ema_decay": (float, 0.999), "warmup_steps": (int, 200), "max_steps": (int, 100_000),
        "max_minutes": (float, 0.0), "seed": (int, 0), "precision": (str, "bf16"), "grad_clip": (float, 1.0),
        "p_mean": (float, -1.2), "p_std": (float, 1.4), "sigma_data": ((float, str), "auto"),
        "sigma_min": (float, 0.002), "sigma_max": (float, 20.0), "c_noise_scale": (float, 1000.0),
        "num_timesteps": (int, 1000), "log_every": (int, 50), "validate_every": (int, 1000),
        "sample_every": (int, 0), "checkpoint_every": (int, 500),
        "val_sigmas": (list, [0.02, 0.05, 0.1, 0.2, 0.5, 1.0]),
        "sample_steps": (int, 18), "n_samples": (int, 16), "init_from": (str, ""),
    },
    "output": {"dir": (str, "runs/prior")},
}
CHOICES = {
    ("", "modality"): ("mri", "ct", "ultrasound"),
    ("data", "source"): ("npy", "mni152", "ct_phantoms", "nifti", "fastmri", "us_tissue", "us_haze"),
    ("train", "objective"): ("edm", "ddpm"),
    ("train", "precision"): ("bf16", "fp32"),
}


def _check_type(where: str, value: Any, types: Any) -> None:
    types = types if isinstance(types, tuple) else (types,)
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        return
    if bool not in types and isinstance(value, bool):
        raise ConfigError(f"{where}: expected {'/'.join(t.__name__ for t in types)}, got a boolean")
    if not isinstance(value, types):
        raise ConfigError(f"{where}: expected {'/'.join(t.__name__ for t in types)}, got {type(value).__name__}")


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a training TOML file into ``{"": top-level, "data": ..., "model": ..., ...}``.

    Unknown sections or keys, wrong types and bad choices raise ``ConfigError`` naming the key and what is allowed.
    """
    import tomllib

    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "config file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise InputError(path, f"not a readable TOML file ({err})") from None
    return validate_config(raw, str(path))


def validate_config(raw: dict[str, Any], where: str = "config") -> dict[str, Any]:
    """Validate a parsed config dict (see ``load_config``)."""
    sections = [s for s in SCHEMA if s]
    cfg: dict[str, dict[str, Any]] = {s: {} for s in SCHEMA}
    for key, value in raw.items():
        if isinstance(value, dict):
            if key not in sections:
                raise ConfigError(f"{where}: unknown section [{key}]; allowed sections: {sections}")
            for k, v in value.items():
                if k not in SCHEMA[key]:
                    raise ConfigError(f"{where}: unknown key '{key}.{k}'; allowed keys in [{key}]: "
                                      f"{sorted(SCHEMA[key])}")
                _check_type(f"{where}: {key}.{k}", v, SCHEMA[key][k][0])
                cfg[key][k] = v
        else:
            if key not in SCHEMA[""]:
                raise ConfigError(f"{where}: unknown key '{key}'; allowed top-level keys: "
                                  f"{sorted(SCHEMA[''])} and sections {sections}")
            _check_type(f"{where}: {key}", value, SCHEMA[""][key][0])
            cfg[""][key] = value
    for section, keys in SCHEMA.items():
        for k, (_, default) in keys.items():
            if k not in cfg[section]:
                if default is ...:
                    raise ConfigError(f"{where}: missing required key '{(section + '.') if section else ''}{k}'")
                if default is not None:
                    cfg[section][k] = copy.deepcopy(default)
    for (section, k), allowed in CHOICES.items():
        if cfg[section][k] not in allowed:
            name = f"{section}.{k}" if section else k
            raise ConfigError(f"{where}: {name} = {cfg[section][k]!r} is not one of {list(allowed)}")
    sd = cfg["train"]["sigma_data"]
    if isinstance(sd, str) and sd != "auto":
        raise ConfigError(f"{where}: train.sigma_data must be a number or 'auto', got {sd!r}")
    if cfg["train"]["batch_size"] < 1 or cfg["train"]["max_steps"] < 0:
        raise ConfigError(f"{where}: train.batch_size must be >= 1 and train.max_steps >= 0")
    spacing = cfg["data"]["pixel_spacing_mm"]
    if spacing and not (len(spacing) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                  for v in spacing) and 0 < spacing[0] <= spacing[1]):
        raise ConfigError(f"{where}: data.pixel_spacing_mm = {spacing} must be [lo, hi] mm with 0 < lo <= hi "
                          "([]: not stated)")
    crop = cfg["data"]["crop"]
    if crop < 0 or crop > cfg["data"]["image_size"]:
        raise ConfigError(f"{where}: data.crop = {crop} must lie in [0, data.image_size] (0: no crop)")
    if cfg["data"]["source"] in ("npy", "nifti", "fastmri") and not cfg["data"]["path"]:
        raise ConfigError(f"{where}: data.path is required for data.source = {cfg['data']['source']!r}")
    return cfg
