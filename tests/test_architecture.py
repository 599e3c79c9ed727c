"""Imports flow one way between the top-level packages (docs/ARCHITECTURE.md): the contracts in
pyproject.toml, checked by import-linter over every import, those inside functions included."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from importlinter.cli import lint_imports

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_the_packages_keep_their_one_way_imports(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    assert lint_imports(config_filename=str(REPO_ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def test_the_check_fails_when_classifier_imports_the_worker_again(tmp_path, monkeypatch):
    # A copy of the tree in which the web side imports the worker package, as it once did.
    for package in ("lesionsite", "classifier", "worker", "training"):
        shutil.copytree(REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    queueing = tmp_path / "classifier" / "queueing.py"
    queueing.write_text(queueing.read_text() + "\n\ndef _send_directly():\n    from worker.tasks import predict\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [name for name in sys.modules if name.split(".")[0] in ("lesionsite", "classifier", "worker")]:
        monkeypatch.delitem(sys.modules, name)

    assert lint_imports(config_filename=str(tmp_path / "pyproject.toml"), no_cache=True, no_logo=True) != 0
