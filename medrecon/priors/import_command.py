"""``medrecon import-checkpoint SRC --arch adm|ncsnpp --config NAME|FILE [--out STEM] [--dtype D]``: convert a
downloaded public checkpoint into safetensors + sidecar, once; ``load_prior(STEM.json)`` then loads it."""
from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments."""
    parser.add_argument("src", metavar="SRC.pt", help="the downloaded checkpoint (read with weights_only=True)")
    parser.add_argument("--arch", required=True, choices=["adm", "ncsnpp"],
                        help="guided-diffusion ADM U-Net (adm) or score_sde NCSN++ (ncsnpp)")
    parser.add_argument("--config", required=True, metavar="NAME|FILE",
                        help="a registry entry (data_manifests/public_prior_*.json: "
                             "dds-aapm-256, dds-fastmri-knee-320-complex, diffusionmbir-aapm-256, "
                             "score-mri-fastmri-knee-320) or a JSON file of the same schema")
    parser.add_argument("--out", default=None, metavar="STEM",
                        help="output stem: writes STEM.safetensors and STEM.json (default: priors/<config name>)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                        help="storage dtype of floating weights (default float32)")


def main(args: argparse.Namespace) -> int:
    """Convert and print the sidecar's path; ``MedreconError`` on any refused input (nothing written)."""
    from ..priors.importing import import_checkpoint
    from ..priors.public import import_config

    entry = import_config(args.config)
    out = Path(args.out) if args.out else Path("priors") / entry["name"]
    sidecar = import_checkpoint(args.src, entry, out, dtype=args.dtype, arch=args.arch)
    print(f"wrote {sidecar.with_suffix('.safetensors')} and {sidecar}")
    return 0
