"""Shared fixtures: the real datasets directory (skipped with a reason when absent) and opt-in slow tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

try:  # fuzz test sizes: "ci" unless pytest --hypothesis-profile thorough (loaded after this, so it wins)
    from hypothesis import settings

    settings.register_profile("ci", max_examples=60)
    settings.register_profile("thorough", max_examples=2000)
    settings.load_profile("ci")
except ImportError:
    pass


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def data_dir() -> Path | None:
    """``$COTDISTILL_DATA_DIR``, else ``../shared/datasets`` beside the project."""
    env = os.environ.get("COTDISTILL_DATA_DIR")
    path = Path(env) if env else REPO.parent / "shared" / "datasets"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    path = data_dir()
    if path is None:
        pytest.skip("real datasets not found: set COTDISTILL_DATA_DIR or place them in ../shared/datasets")
    return path


def need(datasets_dir: Path, sub: str) -> Path:
    path = datasets_dir / sub
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path
