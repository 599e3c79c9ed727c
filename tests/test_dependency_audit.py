"""The dependency audit step says plainly when it could not audit (.ci/audit_dependencies.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "audit_dependencies.py"


def load_audit():
    spec = importlib.util.spec_from_file_location("audit_dependencies", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_it_says_packages_that_could_not_be_looked_up_were_not_audited():
    report = {
        "dependencies": [
            {"name": "django", "skip_reason": "Dependency not found on PyPI and could not be audited: django (5.2)"},
            {"name": "numpy", "skip_reason": "Dependency not found on PyPI and could not be audited: numpy (2.4)"},
        ]
    }
    status, message = load_audit().summarise(report)
    assert status == 0
    assert "NOT done for 2 of 2 packages" in message
    assert "No known vulnerabilities" not in message


def test_it_fails_on_a_known_vulnerability_and_names_it():
    report = {
        "dependencies": [
            {"name": "django", "version": "5.2.0", "vulns": [{"id": "PYSEC-2026-1", "fix_versions": ["5.2.1"]}]},
            {"name": "numpy", "version": "2.4.6", "vulns": []},
        ]
    }
    status, message = load_audit().summarise(report)
    assert status == 1
    assert "VULNERABLE: django 5.2.0: PYSEC-2026-1" in message
    assert "audited 2 packages: 1 with known vulnerabilities" in message


def test_a_clean_audit_of_every_package_passes():
    status, message = load_audit().summarise({"dependencies": [{"name": "numpy", "version": "2.4.6", "vulns": []}]})
    assert status == 0
    assert message == "audited 1 packages: 0 with known vulnerabilities"
