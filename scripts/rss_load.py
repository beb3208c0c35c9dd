"""Where a weights file's memory goes: RSS after importing torch and the checkpoint loader,
after loading the file, and after handing freed heap back to the OS.

    python scripts/rss_load.py [WEIGHTS]

Only torch, safetensors, numpy and psutil are needed (not torchvision or the face finders), so
it also runs in a bare venv with another torch build, e.g. the CPU-only wheel the Dockerfile
installs: `python -m venv /tmp/cpu && /tmp/cpu/bin/pip install torch psutil safetensors numpy
pillow --index-url ...` then `PYTHONPATH=. /tmp/cpu/bin/python scripts/rss_load.py`.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_mb() -> float:
    gc.collect()
    return float(psutil.Process().memory_info().rss) / 2**20


def main() -> None:
    import torch

    from detector.checkpoints import load_checkpoint, resolve_weights
    from detector.memory import release_free_memory

    weights = resolve_weights(sys.argv[1] if len(sys.argv) > 1 else None)
    imported = rss_mb()
    loaded = load_checkpoint(weights)
    after_load = rss_mb()
    release_free_memory()
    trimmed = rss_mb()
    params = sum(p.numel() * p.element_size() for p in loaded.module.parameters()) / 2**20
    print(  # noqa: T201 - the script's output
        f"torch {torch.__version__}, {weights.name} ({loaded.config.members} network(s), "
        f"{params:.0f} MB of parameters): RSS after imports {imported:.0f} MB, after loading "
        f"{after_load:.0f} MB (+{after_load - imported:.0f}), after a heap trim {trimmed:.0f} MB"
    )


if __name__ == "__main__":
    main()
