"""The bundled demo set, end to end: every format a school writes, read against its truth.

`sample_scans/` holds PDF (JPEG pages), multi-page CCITT G4 TIFF, single JPEGs, phone photos,
a 1-bit PNG, a duplex blank back, upside-down and turned sheets, all three templates, spares
and the hard cases, with `truth.json` saying what is on each page.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from exitscan.pipeline import ProcessOptions, run_batch

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_scans"
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import evaluate


def test_sample_scans_are_read_right_or_flagged(tmp_path, monkeypatch):
    monkeypatch.setenv("EXITSCAN_DATA", str(tmp_path / "data"))
    truth = json.loads((SAMPLES / "truth.json").read_text(encoding="utf-8"))
    batch = run_batch(ProcessOptions((SAMPLES,), tmp_path / "out", jobs=2))
    c = evaluate(truth, batch)["counts"]
    assert c["silently_wrong"] == 0
    assert c["pages_accounted"] == c["pages"] == 12
    assert c["missing"] == 0 and c["codes_read"] == c["passes"] == 22
    # Most clear passes need no look; the rest are flagged, never wrong.
    assert c["clear_accepted"] >= c["clear"] - 2
    kinds = sorted(p.kind for p in batch.problems)
    # The duplex back is blank; truth.json and README.md are "not a scan".
    assert kinds == ["blank", "unsupported", "unsupported"]
    formats = {p.source.rsplit(".", 1)[-1] for p in batch.passes}
    assert formats == {"pdf", "tif", "jpg", "png"}
    assert {p.template for p in batch.passes} == {"classic", "ticks", "criteria"}
