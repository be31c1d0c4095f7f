"""Layering contract (docs/architecture.md): the pure-torch layers import no Lightning.

``robustlit/losses``, ``robustlit/certify``, ``robustlit/attacks``, ``robustlit/models`` and every
pure-torch file of a method package (``robustlit/mixed``: all but its Lightning module and base
loader) must be importable, and testable, without Lightning. Checked honestly: one fresh Python
process imports every such module (found by walking the packages, so new files are covered) and then
looks at ``sys.modules``; it finally imports a Lightning file to show the check can see Lightning.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PURE_PACKAGES = ["robustlit.losses", "robustlit.certify", "robustlit.attacks", "robustlit.models"]
#: method packages -> their files that may use Lightning (everything else in them must not)
METHOD_PACKAGES = {
    "robustlit.mixed": ["module", "mixednuts_module", "bases", "evaluation", "report_table", "confidence_evaluation"]
}

_SCRIPT = """
import importlib, importlib.util, json, pkgutil, sys

def lightning_loaded():
    return sorted(m for m in sys.modules if m.split(".")[0] in ("lightning", "pytorch_lightning"))

pure_packages, method_packages = json.loads(sys.argv[1]), json.loads(sys.argv[2])
report = {"checked": [], "offender": None, "lightning": []}
packages = list(pure_packages) + list(method_packages)
names = list(packages)
for package in packages:  # list the files without importing them
    path = importlib.util.find_spec(package).submodule_search_locations
    allowed = set(method_packages.get(package, []))
    names += [f"{package}.{info.name}" for info in pkgutil.iter_modules(path) if info.name not in allowed]
for name in names:
    importlib.import_module(name)
    report["checked"].append(name)
    if lightning_loaded():
        report["offender"], report["lightning"] = name, lightning_loaded()[:5]
        break
# the check can see Lightning: a method package's Lightning file does load it
importlib.import_module(next(f"{p}.{files[0]}" for p, files in method_packages.items()))
report["sees_lightning"] = bool(lightning_loaded())
print(json.dumps(report))
"""


def test_pure_layers_import_no_lightning():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(PURE_PACKAGES), json.dumps(METHOD_PACKAGES)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["offender"] is None, (
        f"importing {report['offender']} loads Lightning ({report['lightning']}); pure-torch layers and the "
        "pure files of method packages must not import lightning (move that code into a Lightning module)"
    )
    checked = set(report["checked"])
    expected = {"robustlit.losses.trades", "robustlit.certify.smoothing", "robustlit.attacks.pgd"}
    expected |= {"robustlit.models.small_cnn", "robustlit.mixed.classifier", "robustlit.mixed.adaptive_attack"}
    assert expected <= checked, f"not checked: {sorted(expected - checked)}"
    assert not {"robustlit.mixed.module", "robustlit.mixed.bases"} & checked
    assert report["sees_lightning"], "importing robustlit.mixed.module did not load lightning: the check is blind"
