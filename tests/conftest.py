"""Shared pytest options: ``--update-golden`` rewrites the stored sums of the golden full-loop tests.

Like the command line (``medrecon.threads``), the tests let idle OpenMP threads sleep instead of spin: set before
torch is first imported, it keeps a busy 2-core machine from slowing every parallel region several-fold.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/*.json from the current results instead of comparing against them",
    )
