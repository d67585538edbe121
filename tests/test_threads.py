"""``--threads`` and the OpenMP wait policy of the command line."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from medrecon.cli import build_parser, main as cli_main
from medrecon.threads import configure_threads


def test_threads_option_sets_torch_threads():
    before = torch.get_num_threads()
    try:
        assert configure_threads(1) == 1 == torch.get_num_threads()
        assert configure_threads(None) == 1  # unset: keep what is in force
    finally:
        torch.set_num_threads(before)


def test_every_command_takes_threads_and_refuses_zero(capsys):
    assert build_parser("list").parse_args(["list", "--threads", "2"]).threads == 2
    with pytest.raises(SystemExit) as exc:
        cli_main(["list", "--threads", "0"])
    assert exc.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_cli_prefers_passive_wait_unless_set():
    code = "import os, medrecon.cli as c; c.prefer_passive_wait(); print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"
