"""Golden fingerprints of the toy demo and toy paper experiment.

Refactors of the outer ring (stages, evaluations, reports) must not change a single trained
weight or measured number. The fingerprint is the sha256 of every saved model plus every number
the run reports (timings and paths left out), compared with `tests/golden/<name>.json`.

Float results depend on the CPU's vector kernels, so the pin is exact only on the kind of
machine that recorded it (same torch build and CPU capability); elsewhere the test says so and
skips. After a change that is *meant* to alter results, rerun the tests with
REWARDFLOW_UPDATE_GOLDEN=1 and commit the new file with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).parent / "golden"
# What a run measured; wall times, paths, machine facts and training metadata are left out.
RESULTS = ("final", "final_shared", "control", "sweep", "guidance", "tts", "curves", "curves_shared")


def _numbers(obj, prefix: str = "") -> dict[str, object]:
    """Flatten a JSON value to {path: leaf}, log timestamps left out."""
    if isinstance(obj, dict):
        out: dict[str, object] = {}
        for k, v in obj.items():
            if k != "time":  # the wall clock of a logged row
                out.update(_numbers(v, f"{prefix}{k}."))
        return out
    if isinstance(obj, list):
        out = {}
        for i, v in enumerate(obj):
            out.update(_numbers(v, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): obj}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(out: Path, results: dict) -> dict:
    """{models: {name: sha256 of model.safetensors}, results: digest of the numbers, values: ...}."""
    models = {str(p.relative_to(out)): _sha256(p) for p in sorted((out / "models").rglob("*.safetensors"))}
    assert models, f"no saved models under {out / 'models'}"
    values = _numbers({k: results[k] for k in RESULTS if k in results})
    blob = json.dumps(values, sort_keys=True).encode()
    return {"models": models, "results_sha256": hashlib.sha256(blob).hexdigest(), "values": values}


def check_golden(name: str, fp: dict) -> None:
    machine = {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    path = GOLDEN / f"{name}.json"
    if os.environ.get("REWARDFLOW_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps({"machine": machine, **fp}, indent=1, sort_keys=True) + "\n")
    want = json.loads(path.read_text())
    if want["machine"] != machine:
        pytest.skip(f"{path.name} was recorded on {want['machine']}, this machine is {machine}: bits may differ")
    assert fp["models"] == want["models"], "trained weights changed"
    same = lambda a, b: json.dumps(a) == json.dumps(b)  # noqa: E731 (NaN equals NaN here)
    changed = {k: (want["values"].get(k), v) for k, v in fp["values"].items() if not same(want["values"].get(k), v)}
    missing = sorted(set(want["values"]) - set(fp["values"]))
    assert not changed and not missing, f"results changed: {dict(list(changed.items())[:10])}, missing {missing[:10]}"
    assert fp["results_sha256"] == want["results_sha256"]
