"""CI smoke tests for `benchmarks/`: both benchmarks run at tiny sizes and write sane JSON.

No timing thresholds here: the speed targets are checked (and reported PASS/MISS) by the
benchmark itself, on demand; these tests only keep the benchmarks from rotting.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def speed_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("speed")
    speed = _load("speed")
    assert speed.main(["--quick", "--out", str(out)]) == 0
    return out, json.loads((out / "speed.json").read_text())


def test_speed_quick_writes_json_and_markdown(speed_run):
    out, data = speed_run
    md = (out / "speed.md").read_text()
    assert "| dpi | jobs | OCR |" in md and "peak RSS sum" in md and "| target |" in md
    assert data["benchmark"] == "speed" and data["quick"] is True
    s = data["settings"]
    assert data["machine"]["cpus"] >= 1
    off = [(r["dpi"], r["jobs"]) for r in data["speed"] if r["ocr"] == "off"]
    assert sorted(off) == sorted((d, j) for d in s["dpis"] for j in s["jobs"])
    on = [r for r in data["speed"] if r["ocr"] == "on"]
    assert bool(on) == (data["ocr"]["available"] and s["with_ocr"] != "none")
    assert {m["pages"] for m in data["memory"]} == set(s["memory_pages"])
    assert any("repeat" in n for n in data["notes"])


def test_speed_quick_figures_are_sane(speed_run):
    _out, data = speed_run
    s = data["settings"]
    for row in data["speed"]:
        assert row["pages"] == s["pages"]
        assert row["pages_per_s"] > 0 and row["decode_pages_per_s"] > 0 and row["ratio"] > 0
        assert row["cpu_ms_per_page"] > 0
        assert len(row["runs"]) == len(row["decode_runs"]) == s["runs"]
        for run in row["decode_runs"]:
            assert run["decoded_pages"] == s["pages"]
        for run in row["runs"]:
            acc = run["accounted"]
            # Every input page is in results.csv or problems.csv, and the passes add up:
            # pages repeat, so all but the first copy of each pass are duplicates.
            assert acc["pages_accounted"] == acc["pages"] == s["pages"]
            assert acc["passes_read"] + acc["duplicates"] <= acc["passes_on_pages"]
            assert acc["passes_read"] <= s["sheets"] * s["passes_per_page"]
            assert acc["passes_read"] > 0
            assert run["peak_rss_sum_mib"] >= run["peak_single_rss_mib"] > 0
    for mem in data["memory"]:
        assert mem["peak_rss_sum_mib"] >= mem["peak_single_rss_mib"] > 0
        assert mem["processes"] >= 1 + (mem["jobs"] > 1)  # the command, and workers when jobs > 1


def test_speed_quick_reports_every_target(speed_run):
    _out, data = speed_run
    names = {t["name"] for t in data["targets"]}
    assert {"pages_per_s", "ratio", "memory_500", "pages_per_s_ocr"} <= names
    for t in data["targets"]:
        assert t["status"] in ("PASS", "MISS", "n/a")
    ocr = next(t for t in data["targets"] if t["name"] == "pages_per_s_ocr")
    if not data["ocr"]["available"]:
        assert ocr["measured"] == "OCR: not available yet" and ocr["status"] == "n/a"


def test_light_pens_are_not_legible_on_one_bit_pages():
    accuracy = _load("accuracy")
    orange, blue = {"colour": "#f08c00"}, {"colour": "#1c3a9e"}
    assert accuracy._legible({"mode": "1"}, [blue])
    assert not accuracy._legible({"mode": "1"}, [blue, orange])
    assert accuracy._legible({"mode": "gray"}, [orange])


def test_accuracy_tiny(tmp_path):
    accuracy = _load("accuracy")
    assert accuracy.main(["--passes", "8", "--profiles", "copier", "--out", str(tmp_path), "--keep"]) == 0
    results = json.loads((tmp_path / "accuracy.json").read_text())
    assert [r["profile"] for r in results] == ["copier"]
    c = results[0]["counts"]
    assert c["passes"] >= 8
    assert c["accepted_right"] + c["flagged"] + c["silently_wrong"] + c["missing"] == c["passes"]
    assert c["codes_read"] == c["passes"] - c["missing"]
    assert 0 <= c["clear_accepted"] <= c["clear"] <= c["passes"]
    # Grey copier scans keep every pen: the legible clear passes are all the clear ones.
    assert (c["clear_legible"], c["clear_legible_accepted"]) == (c["clear"], c["clear_accepted"])
    assert c["pages_accounted"] == c["pages"] > 0
    assert "| copier |" in (tmp_path / "accuracy.md").read_text()


def test_accuracy_hard_cases_and_a_wrong_pupil_is_counted(tmp_path):
    from dataclasses import replace

    from exitscan.ocr.base import OcrOptions
    from exitscan.pipeline import ProcessOptions, run_batch

    accuracy = _load("accuracy")
    assert accuracy.main(["--passes", "8", "--profiles", "copier", "--cases", "hard", "--out", str(tmp_path), "--keep"]) == 0
    scans = tmp_path / "accuracy-work" / "copier" / "scans"
    truth = json.loads((scans / "truth.json").read_text())
    cases = [t["case"] for f in truth["files"] for pg in f["pages"] for t in pg["passes"]]
    assert sum(c != "clear" for c in cases) > len(cases) / 2, cases
    assert "Cases: hard" in (tmp_path / "accuracy.md").read_text()
    batch = run_batch(ProcessOptions((scans,), tmp_path / "again", jobs=1, ocr=OcrOptions(engine="none")))
    before = accuracy.evaluate(truth, batch)["counts"]["silently_wrong"]
    # One pass's code read as a pupil who has no pass in the batch: silently wrong, flagged or not.
    p = next(p for p in batch.passes if p.code is not None)
    batch.passes[batch.passes.index(p)] = replace(p, code=replace(p.code, student_id="nobody"))
    res = accuracy.evaluate(truth, batch)
    assert res["counts"]["silently_wrong"] == before + 1
    assert any("not a pass of this batch" in w for w in res["silently_wrong"])
