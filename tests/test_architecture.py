"""Imports flow one way between the top-level packages (docs/ARCHITECTURE.md): the contracts in
pyproject.toml, checked by import-linter over every import, those inside functions included.

It runs as its own process: import-linter configures logging for itself, which would
silence the loggers of the tests that follow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_packages_keep_their_one_way_imports():
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_fails_when_classifier_imports_the_worker_again(tmp_path):
    # A copy of the tree in which the web side imports the worker package, as it once did.
    for package in ("lesionsite", "classifier", "worker", "training"):
        shutil.copytree(REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    queueing = tmp_path / "classifier" / "queueing.py"
    queueing.write_text(queueing.read_text() + "\n\ndef _send_directly():\n    from worker.tasks import predict\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    assert "classifier.queueing -> worker.tasks" in result.stdout
