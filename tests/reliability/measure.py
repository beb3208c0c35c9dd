"""Figures for RELIABILITY.md: ``python -m tests.reliability.measure inputs|load`` (from the repo
root; ``scripts/reliability`` runs both). ``inputs``: per corpus class, a fresh process reads
the class's files from disk one at a time, decodes each and runs the served face finder on what
decodes; it reports the files, outcomes and the peak RSS over the process's peak after imports
and one normal picture. ``load``: the mixed burst of
``tests/reliability/load.py`` for queue sizes 4 and 64 (images/s, p50/p95/p99, busy ratio)."""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = """
import json, resource, sys, warnings
from pathlib import Path
warnings.simplefilter("ignore")
from detector.images import decode_image
from detector.errors import DetectorError
from detector.finders import make_finder
finder = make_finder()
warm = Path(sys.argv[2]).read_bytes()  # a normal picture first: first-run allocations are not
finder.find(decode_image(warm).rgb)    # charged to the class
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {}
files = sorted(Path(sys.argv[1]).iterdir())
for path in files:
    try:
        finder.find(decode_image(path.read_bytes()).rgb)
        kind = "decoded"
    except DetectorError as err:
        kind = type(err).__name__
    out[kind] = out.get(kind, 0) + 1
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"files": len(files), "outcomes": out, "peak_rss_over_base_mib":
                  round((peak - base) / 1024, 1), "base_rss_mib": round(base / 1024, 1)}))
"""


def inputs() -> None:
    """Each class's files are written to a folder here; a fresh child process reads them one at
    a time, so the corpus itself never sits in the measured process."""
    from tests.reliability import corpus

    sample = Path(__file__).resolve().parents[2] / "samples" / "astronaut.jpg"
    for cls, make in corpus.CLASSES.items():
        with tempfile.TemporaryDirectory() as tmp:
            for case in make():
                (Path(tmp) / case.name).write_bytes(case.data)
            proc = subprocess.run([sys.executable, "-c", _CHILD, tmp, str(sample)],
                                  capture_output=True, text=True, check=True)  # fmt: skip
        print(json.dumps({"class": cls, **json.loads(proc.stdout)}), flush=True)


def load() -> None:
    from tests.reliability import load as burst

    for queue in (4, 64):
        with tempfile.TemporaryDirectory() as tmp:
            report = asyncio.run(burst.run(Path(tmp), burst.Plan(queue_size=queue)))
        figures = report.figures()
        figures["lost_or_doubled"] = sum(1 for o in report.outcomes if o.replies != 1)
        print(json.dumps(figures))
    print(json.dumps({"process_peak_rss_mib":
                      round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    what = sys.argv[1:] or ["inputs", "load"]
    for name in what:
        {"inputs": inputs, "load": load}[name]()
