"""Shared pytest options: ``--update-golden`` rewrites the stored sums of the golden full-loop tests."""


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/*.json from the current results instead of comparing against them",
    )
