"""Figures for RELIABILITY.md: ``python -m tests.reliability.measure inputs|load`` (from the repo
root; ``scripts/reliability`` runs both). ``inputs``: per corpus class, a fresh process decodes
every file of the class and runs the served face finder on what decodes; it reports the files,
outcomes and the peak RSS over the process's RSS after imports. ``load``: the mixed burst of
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
warnings.simplefilter("ignore")
from tests.reliability import corpus
from detector.images import decode_image
from detector.errors import DetectorError
from detector.finders import make_finder
finder = make_finder()
cases = [c for c in corpus.build() if c.cls == sys.argv[1]]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {}
for case in cases:
    try:
        finder.find(decode_image(case.data).rgb)
        kind = "decoded"
    except DetectorError as err:
        kind = type(err).__name__
    out[kind] = out.get(kind, 0) + 1
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"files": len(cases), "outcomes": out, "peak_rss_over_base_mib":
                  round((peak - base) / 1024, 1), "base_rss_mib": round(base / 1024, 1)}))
"""


def inputs() -> None:
    from tests.reliability import corpus

    for cls in corpus.CLASSES:
        proc = subprocess.run([sys.executable, "-c", _CHILD, cls], capture_output=True,
                              text=True, check=True)  # fmt: skip
        print(json.dumps({"class": cls, **json.loads(proc.stdout)}))


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
