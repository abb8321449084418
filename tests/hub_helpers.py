"""A fake Hugging Face cache: hub ids resolved offline to folders written by the tests."""

from __future__ import annotations

import shutil
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_hub_cache(monkeypatch, cache: Path, repos: dict[str, Path]) -> Path:
    """Lay out ``repos`` ({hub id: folder}) as the Hugging Face cache does and point the hub
    libraries at it, offline."""
    import huggingface_hub.constants as hc

    for repo, src in repos.items():
        base = cache / ("models--" + repo.replace("/", "--"))
        shutil.copytree(src, base / "snapshots" / COMMIT)
        (base / "refs").mkdir(parents=True)
        (base / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache
