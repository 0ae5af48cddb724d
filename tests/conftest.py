"""Shared fixtures: an isolated DECONFOUND_HOME per test, a store, the demo tables."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # so pages can `import ui` under AppTest

# Keep torch and BLAS from oversubscribing the 2 CI cores when tests run beside other work.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh DECONFOUND_HOME (and DECONFOUND_DB inside it) for one test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DECONFOUND_HOME", str(home))
    monkeypatch.setenv("DECONFOUND_DB", str(home / "studio.duckdb"))
    return home


@pytest.fixture
def store(home):
    """An empty Store in the test's home."""
    from deconfound.data import Store
    return Store(home / "studio.duckdb")


@pytest.fixture
def demo_store(store):
    """A store with both demo tables ingested and tagged."""
    from deconfound.sim import load_demo
    load_demo(store)
    return store


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Both demo CSVs ingested and tagged in a DuckDB file shared by one test module."""
    from deconfound.data import Store
    from deconfound.sim import load_demo
    store = Store(tmp_path_factory.mktemp("demo") / "demo.duckdb")
    load_demo(store)
    return store
