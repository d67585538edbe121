"""setup.cfg ships every data folder as a package (no setuptools warnings) and every package-data file exists."""
from __future__ import annotations

import configparser
from pathlib import Path

from setuptools import find_namespace_packages

ROOT = Path(__file__).resolve().parents[1]


def _options() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "setup.cfg")
    return cfg


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_data_folders_are_packages_and_package_data_matches_files():
    cfg = _options()
    assert cfg["options"]["packages"].strip() == "find_namespace:"
    find = cfg["options.packages.find"]
    packages = find_namespace_packages(
        str(ROOT), include=_lines(find["include"]), exclude=_lines(find.get("exclude", ""))
    )
    for data_dir in ("medrecon.configs", "medrecon.data", "medrecon.priors.default"):
        assert data_dir in packages
    assert not [p for p in packages if "__pycache__" in p or p.startswith("tests")]
    for package, globs in cfg["options.package_data"].items():
        for pattern in (g.strip() for g in globs.split(",")):
            assert list((ROOT / package.replace(".", "/")).glob(pattern)), f"{package}: {pattern} matches nothing"
