"""Next-step benchmark: handwriting crops and OCR drafts against the simulator's truth.

For each scan profile, N passes are simulated (`exitscan.simulate.make_batch`, classic
template: the biggest writing area), read with the real pipeline (`run_batch`, OCR on, 2
workers) and compared pass by pass with the sentence the simulated pupil wrote:

- written found / missed / false: the crop's "anything written?" against the truth;
- CER: character error rate of ``next_step_text`` (edits / truth length; a missed or empty
  draft counts 1.0), over the passes that wrote something; exact: drafts right to the letter;
- trusted: drafts at or above ``exitscan.ocr.LOW_CONFIDENCE``, and their CER (the ones a
  teacher may read without the crop);
- snapped right / wrong: `exitscan.nextsteps.best_match` against the simulator's own list of
  ~40 sentences (what a teacher's list of known next steps would be): offered and right,
  offered and wrong (never silently applied: the draft stays);
- ms/crop: time inside the OCR engine per written pass (`PassResult.ocr_seconds`).

Then speed: ``--speed-passes`` copier passes as 300/200-dpi JPEG pages, read with OCR on and
off on ``--jobs`` workers; pages/s counts from the start of the batch to its last page read
(the spreadsheet written after is the workbook's cost, reported apart). The machine's load
average is printed beside it: on a shared machine the figures are a floor.

    python benchmarks/ocr.py [--passes 80] [--profiles copier,phone,...] [--speed-passes 80] [--out bench-out]

Targets (SPEC, next-steps issue): CER <= 0.25 on copier scans; >= 5 pages/s with OCR on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from exitscan.nextsteps import best_match, cer, normalise
from exitscan.ocr import LOW_CONFIDENCE, OcrOptions
from exitscan.pipeline import ProcessOptions, run_batch
from exitscan.simulate import make_batch
from exitscan.simulate.content import NEXT_STEPS

DEFAULT_PROFILES = ("clean", "copier", "bw-copier", "low-quality", "phone", "mono-printer")
TARGET_CER = 0.25
TARGET_PAGES_PER_S = 5.0


def _key(lesson_key: str, student_id: str, serial: int) -> tuple[str, str]:
    return (lesson_key, student_id if student_id else f"spare#{serial}")


def evaluate(truth: dict, passes) -> dict:
    """Compare the next steps read with the truth's sentences."""
    by_key = {_key(p.code.lesson_key, p.code.student_id, p.code.serial): p for p in passes if p.code is not None}
    n = dict.fromkeys(("passes", "written", "found", "missed", "false_written", "exact", "trusted", "snapped_right", "snapped_wrong"), 0)
    errors, trusted_errors, ms, examples = [], [], [], []
    for f in truth["files"]:
        for page in f["pages"]:
            for t in page["passes"]:
                r = by_key.get(_key(t["lesson_key"], t["student_id"], t["serial"]))
                if r is None:
                    continue
                n["passes"] += 1
                want = t["next_step"]
                if not want:
                    n["false_written"] += r.next_step_written
                    continue
                n["written"] += 1
                if not r.next_step_written:
                    n["missed"] += 1
                    errors.append(1.0)
                    continue
                n["found"] += 1
                e = cer(r.next_step_text, want)
                errors.append(e)
                ms.append(r.ocr_seconds * 1000)
                n["exact"] += r.next_step_text == want
                if r.next_step_trusted:
                    n["trusted"] += 1
                    trusted_errors.append(e)
                m = best_match(r.next_step_text, NEXT_STEPS)
                if m is not None:
                    right = normalise(m.text) == normalise(want)
                    n["snapped_right" if right else "snapped_wrong"] += 1
                if len(examples) < 6 and e > 0:
                    examples.append({"truth": want, "draft": r.next_step_text, "cer": round(e, 3), "confidence": r.next_step_confidence})
    return {
        **n,
        "cer": round(float(np.mean(errors)), 3) if errors else None,
        "cer_median": round(float(np.median(errors)), 3) if errors else None,
        "cer_trusted": round(float(np.mean(trusted_errors)), 3) if trusted_errors else None,
        "ms_per_crop": round(float(np.mean(ms)), 1) if ms else None,
        "ms_per_crop_p90": round(float(np.percentile(ms, 90)), 1) if ms else None,
        "examples": examples,
    }


def run_profile(profile: str, passes: int, seed: int, jobs: int, work: Path) -> dict:
    scans = work / f"scans-{profile}"
    truth = make_batch(scans, passes, template="classic", profile=profile, seed=seed, jobs=jobs)
    batch = run_batch(ProcessOptions((scans,), work / f"out-{profile}", jobs=jobs, ocr=OcrOptions()))
    return {"profile": profile, **evaluate(truth, batch.passes), "warnings": batch.warnings}


def _timed_batch(scans: Path, out: Path, jobs: int, ocr: OcrOptions) -> dict:
    marks: list[float] = []
    start = time.perf_counter()
    batch = run_batch(ProcessOptions((scans,), out, jobs=jobs, ocr=ocr), lambda done, total: marks.append(time.perf_counter()))
    total = time.perf_counter() - start
    read = (marks[-1] - start) if marks else total
    written = [p for p in batch.passes if p.next_step_written]
    return {
        "ocr": ocr.engine,
        "pages": batch.pages,
        "passes": len(batch.passes),
        "written": len(written),
        "read_s": round(read, 2),
        "total_s": round(total, 2),
        "pages_per_s": round(batch.pages / read, 2) if read > 0 else None,
        "ocr_ms_per_crop": round(1000 * float(np.mean([p.ocr_seconds for p in written])), 1) if written and ocr.enabled else None,
        "warnings": batch.warnings,
    }


def _cpu_per_page(scans: Path, out: Path, extra: list[str]) -> dict:
    """CPU seconds of a whole ``exitscan process --jobs 1`` run (start-up and workbook included).

    On a machine shared with other work, wall time measures the neighbours too; CPU time
    does not, so ``jobs / cpu_per_page`` is what that many idle cores would do (pages are
    independent). One process, because the CPU time of a pool's workers (children of the
    fork server) is not reported back to the process that ran the batch.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    cmd = [sys.executable, "-c", "from exitscan.cli import main; main()", "process", str(scans), "--out", str(out), "--jobs", "1", "-q", *extra]
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    pages = sum(1 for f in scans.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".pdf"))
    return {"cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "files": pages}


def run_speed(passes: int, seed: int, jobs: int, work: Path) -> dict:
    scans = work / "speed-scans"
    make_batch(scans, passes, template="classic", profile="copier", formats="jpeg", seed=seed, jobs=jobs)
    # A warm-up run (page cache, the model files), then the measured ones.
    _timed_batch(scans, work / "speed-warm", jobs, OcrOptions())
    on = _timed_batch(scans, work / "speed-on", jobs, OcrOptions())
    off = _timed_batch(scans, work / "speed-off", jobs, replace(OcrOptions(), engine="none"))
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    cpu = {}
    for name, extra in (("ocr_on", []), ("ocr_off", ["--no-ocr"])):
        c = _cpu_per_page(scans, work / f"cpu-{name}", extra)
        per_page = c["cpu_s"] / on["pages"] if on["pages"] else None
        c["cpu_s_per_page"] = round(per_page, 3) if per_page else None
        c["idle_pages_per_s"] = round(jobs / per_page, 2) if per_page else None
        cpu[name] = c
    return {"jobs": jobs, "ocr_on": on, "ocr_off": off, "cpu": cpu, "load_average": [round(x, 2) for x in load], "cpus": os.cpu_count()}


def table(results: list[dict]) -> str:
    head = "| profile | written | found | missed | false | CER | median | exact | trusted (CER) | snapped right / wrong | ms/crop |"
    rows = [head, "|" + "---|" * 11]
    for r in results:
        trusted = f"{r['trusted']} ({r['cer_trusted']})" if r["trusted"] else "0"
        rows.append(
            f"| {r['profile']} | {r['written']} | {r['found']} | {r['missed']} | {r['false_written']} | {r['cer']} | "
            f"{r['cer_median']} | {r['exact']} | {trusted} | {r['snapped_right']} / {r['snapped_wrong']} | {r['ms_per_crop']} |"
        )
    return "\n".join(rows)


def speed_table(s: dict) -> str:
    rows = ["| OCR | pages | passes | read s | pages/s | OCR ms/crop | total s (with workbook) |", "|---|---|---|---|---|---|---|"]
    for k in ("ocr_on", "ocr_off"):
        r = s[k]
        rows.append(f"| {r['ocr']} | {r['pages']} | {r['passes']} | {r['read_s']} | {r['pages_per_s']} | {r['ocr_ms_per_crop']} | {r['total_s']} |")
    rows.append("")
    rows.append(f"{s['jobs']} workers on {s['cpus']} CPUs; load average {s['load_average']} (other work on the machine slows the wall-clock figures).")
    rows.append(f"CPU time of a whole `exitscan process --jobs 1` run (start-up and workbook included), and what it means on {s['jobs']} idle cores:")
    rows.append("")
    rows.append("| OCR | CPU s | CPU s/page | pages/s on idle cores |")
    rows.append("|---|---|---|---|")
    for k, c in s["cpu"].items():
        rows.append(f"| {k.replace('ocr_', '')} | {c['cpu_s']} | {c['cpu_s_per_page']} | {c['idle_pages_per_s']} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passes", type=int, default=80)
    ap.add_argument("--profiles", default=",".join(DEFAULT_PROFILES))
    ap.add_argument("--speed-passes", type=int, default=80, help="0: skip the speed run")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--keep", action="store_true", help="keep the simulated scans and results")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ocr-work-", dir=args.out))
    results, speed = [], None
    try:
        for profile in [p for p in args.profiles.split(",") if p]:
            r = run_profile(profile, args.passes, args.seed, args.jobs, work)
            results.append(r)
            print(f"{profile}: CER {r['cer']} over {r['written']} written passes, {r['ms_per_crop']} ms/crop", file=sys.stderr)
        if args.speed_passes:
            speed = run_speed(args.speed_passes, args.seed, args.jobs, work)
    finally:
        if args.keep:
            print(f"kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    lines = ["## Next steps: crops and OCR drafts", "", table(results), "", f"Trusted: confidence >= {LOW_CONFIDENCE}."]
    copier = next((r for r in results if r["profile"] == "copier"), None)
    if copier and copier["cer"] is not None:
        lines.append(f"Copier CER {copier['cer']} (target <= {TARGET_CER}): {'PASS' if copier['cer'] <= TARGET_CER else 'MISS'}")
    if speed:
        pps = speed["ocr_on"]["pages_per_s"] or 0
        idle = speed["cpu"]["ocr_on"]["idle_pages_per_s"] or 0
        lines += ["", "## Speed with OCR", "", speed_table(speed), "",
                  (f"{pps} pages/s with OCR, wall clock (target >= {TARGET_PAGES_PER_S}): {'PASS' if pps >= TARGET_PAGES_PER_S else 'MISS'}; "
                   f"{idle} pages/s from CPU time on idle cores: {'PASS' if idle >= TARGET_PAGES_PER_S else 'MISS'}")]
    text = "\n".join(lines)
    print(text)
    (args.out / "ocr.md").write_text(text + "\n", encoding="utf-8")
    (args.out / "ocr.json").write_text(json.dumps({"profiles": results, "speed": speed}, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
