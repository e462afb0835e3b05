"""Next-step benchmark: handwriting crops and OCR drafts against the simulator's truth, per engine.

For each scan profile, N passes are simulated (`exitscan.simulate.make_batch`, classic
template: the biggest writing area), then read with the real pipeline (`run_batch`, 2
workers) once per installed OCR engine (`exitscan.ocr.ENGINES`: rapidocr, tesseract), and
compared pass by pass with the sentence the simulated pupil wrote. Besides the simulator's
profiles (where 1 writer in 5 jitters every letter), ``hard`` is a benchmark-side set: copier
scans of passes where *every* writer has the per-letter jitter of size, position and angle
(`PassMarks.hard_text`), the hardest handwriting the simulator makes.

- written found / missed / false: the crop's "anything written?" against the truth;
- CER: character error rate of ``next_step_text`` (edits / truth length; a missed or empty
  draft counts 1.0, and so does a pass that was never found or whose code was not read: its
  sentence reached nobody; counted among the missed), over the passes that wrote something;
  exact: drafts right to the letter;
- trusted: drafts at or above ``exitscan.ocr.LOW_CONFIDENCE``, and their CER (the ones a
  teacher may read without the crop);
- snapped right / wrong: `exitscan.nextsteps.best_match` against the simulator's own list of
  ~40 sentences (what a teacher's list of known next steps would be): offered and right,
  offered and wrong (never silently applied: the draft stays);
- ms/crop: time inside the OCR engine per written pass (`PassResult.ocr_seconds`).

Then speed: ``--speed-passes`` copier passes as 300/200-dpi JPEG pages, read with each engine
and with OCR off on ``--jobs`` workers; pages/s counts from the start of the batch to its last page read
(the spreadsheet written after is the workbook's cost, reported apart). The machine's load
average is printed beside it: on a shared machine the figures are a floor.

    python benchmarks/ocr.py [--passes 80] [--profiles copier,phone,...,hard] [--engines rapidocr,tesseract]
                             [--speed-passes 80] [--seed 11] [--out bench-out]

Targets (SPEC, OCR-engine issue), for the default engine (the first installed): CER <= 0.05 on
copier profiles (copier, bw-copier, mono-printer), <= 0.10 on phone and low-quality; drafts at or
above the trusted line (confidence >= 0.8) <= 2% CER, for every engine; >= 5 pages/s with OCR on
2 cores.
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

import cv2
import numpy as np

from exitscan.nextsteps import best_match, cer, normalise
from exitscan.ocr import ENGINES, LOW_CONFIDENCE, OcrOptions, OcrUnavailable, open_engine
from exitscan.pipeline import ProcessOptions, run_batch
from exitscan.simulate import PassMarks, make_batch, make_page
from exitscan.simulate.content import NEXT_STEPS

DEFAULT_PROFILES = ("clean", "copier", "bw-copier", "low-quality", "phone", "mono-printer", "hard")
#: CER targets for the default engine, per profile (the hard set has none: it is the stress test).
TARGET_CER = {"copier": 0.05, "bw-copier": 0.05, "mono-printer": 0.05, "phone": 0.10, "low-quality": 0.10}
TARGET_TRUSTED_CER = 0.02
TARGET_PAGES_PER_S = 5.0


def installed_engines(wanted: list[str] | None = None) -> list[tuple[str, str]]:
    """(name, "name version") of each engine that opens here, best first."""
    found = []
    for name in wanted or list(ENGINES):
        try:
            e = open_engine(OcrOptions(engine=name))
        except OcrUnavailable as why:
            print(f"{name}: not installed ({why.message})", file=sys.stderr)
            continue
        found.append((name, f"{e.name} {e.version}"))
        e.close()
    return found


def _key(lesson_key: str, student_id: str, serial: int) -> tuple[str, str]:
    return (lesson_key, student_id if student_id else f"spare#{serial}")


def evaluate(truth: dict, passes, blurred: frozenset[tuple[str, int]] = frozenset()) -> dict:
    """Compare the next steps read with the truth's sentences. ``blurred``: the (file, page)s
    the batch named as blurred photos; the CER is also given without them (``cer_sharp``)."""
    by_key = {_key(p.code.lesson_key, p.code.student_id, p.code.serial): p for p in passes if p.code is not None}
    n = dict.fromkeys(
        ("passes", "written", "found", "missed", "not_found", "false_written", "exact", "trusted", "snapped_right", "snapped_wrong"), 0
    )
    errors, trusted_errors, ms, examples = [], [], [], []
    sharp: list[float] = []  # the errors of passes on pages not named blurred
    for f in truth["files"]:
        for page in f["pages"]:
            named_blurred = (f.get("file"), page.get("page")) in blurred
            before = len(errors)
            for t in page["passes"]:
                r = by_key.get(_key(t["lesson_key"], t["student_id"], t["serial"]))
                if r is None:
                    if t["next_step"]:  # a pass never found (or its code unread): its sentence is lost
                        n["written"] += 1
                        n["missed"] += 1
                        n["not_found"] += 1
                        errors.append(1.0)
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
            if not named_blurred:
                sharp.extend(errors[before:])
    return {
        **n,
        "cer": round(float(np.mean(errors)), 3) if errors else None,
        "cer_median": round(float(np.median(errors)), 3) if errors else None,
        "cer_sharp": round(float(np.mean(sharp)), 3) if sharp else None,
        "written_blurred": len(errors) - len(sharp),
        "cer_trusted": round(float(np.mean(trusted_errors)), 3) if trusted_errors else None,
        "ms_per_crop": round(float(np.mean(ms)), 1) if ms else None,
        "ms_per_crop_p90": round(float(np.percentile(ms, 90)), 1) if ms else None,
        "examples": examples,
    }


def make_hard(folder: Path, passes: int, seed: int) -> dict:
    """Copier scans (grey PNG) of passes whose every writer jitters each letter; the truth as
    `make_batch` gives it (only what `evaluate` reads). A benchmark-side set: the simulator's
    own profiles give 1 writer in 5 this hand."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 0x4A4D])
    sheets = -(-passes // 4)
    pages = []
    for k in range(sheets):
        marks = [replace(PassMarks.clear("green", text=str(rng.choice(NEXT_STEPS))), hard_text=True) for _ in range(4)]
        page = make_page(marks, per_page=4, profile="copier", orientation=0, seed=seed * 1000 + k, sheet=k, spares=max(0, 4 * sheets - 12))
        img = page.image
        img = (img.astype(np.uint8) * 255) if img.dtype == bool else (img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
        assert cv2.imwrite(str(folder / f"hard-{k + 1:03d}.png"), img)
        pages.append({"passes": [{"lesson_key": t.lesson_key, "student_id": t.student_id, "serial": t.serial, "next_step": t.next_step} for t in page.truth.passes]})
    return {"files": [{"pages": pages}]}


def run_profile(profile: str, passes: int, seed: int, jobs: int, work: Path, engines: list[tuple[str, str]]) -> list[dict]:
    """The profile's scans, simulated once, read by each engine."""
    scans = work / f"scans-{profile}"
    if profile == "hard":
        truth = make_hard(scans, passes, seed)
    else:
        truth = make_batch(scans, passes, template="classic", profile=profile, seed=seed, jobs=jobs)
    out = []
    for name, label in engines:
        batch = run_batch(ProcessOptions((scans,), work / f"out-{profile}-{name}", jobs=jobs, ocr=OcrOptions(engine=name)))
        blurred = frozenset(batch.blurred)
        out.append({"profile": profile, "engine": label, **evaluate(truth, batch.passes, blurred), "warnings": batch.warnings})
    return out


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


def run_speed(passes: int, seed: int, jobs: int, work: Path, engines: list[tuple[str, str]]) -> dict:
    scans = work / "speed-scans"
    make_batch(scans, passes, template="classic", profile="copier", formats="jpeg", seed=seed, jobs=jobs)
    # A warm-up run (page cache, the model files), then the measured ones.
    _timed_batch(scans, work / "speed-warm", jobs, OcrOptions(engine="none"))
    runs = {}
    for name, _label in engines:
        runs[name] = _timed_batch(scans, work / f"speed-{name}", jobs, OcrOptions(engine=name))
    runs["none"] = _timed_batch(scans, work / "speed-off", jobs, OcrOptions(engine="none"))
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    cpu = {}
    for name in runs:
        c = _cpu_per_page(scans, work / f"cpu-{name}", ["--no-ocr"] if name == "none" else ["--ocr-engine", name])
        per_page = c["cpu_s"] / runs[name]["pages"] if runs[name]["pages"] else None
        c["cpu_s_per_page"] = round(per_page, 3) if per_page else None
        c["idle_pages_per_s"] = round(jobs / per_page, 2) if per_page else None
        cpu[name] = c
    for name in runs:
        crops = runs[name]["written"]
        if name != "none" and crops:
            cpu[name]["ocr_cpu_ms_per_crop"] = round(1000 * (cpu[name]["cpu_s"] - cpu["none"]["cpu_s"]) / crops, 1)
    return {"jobs": jobs, "runs": runs, "cpu": cpu, "load_average": [round(x, 2) for x in load], "cpus": os.cpu_count()}


def table(results: list[dict]) -> str:
    head = (
        "| profile | engine | written | found / missed / false | CER | median | exact | trusted (CER) | "
        "snapped right / wrong | ms/crop | CER without blurred pages (written on them) |"
    )
    rows = [head, "|" + "---|" * 11]
    for r in results:
        trusted = f"{r['trusted']} ({r['cer_trusted']})" if r["trusted"] else "0"
        exact = f"{r['exact']} ({100 * r['exact'] / r['written']:.0f}%)" if r["written"] else "0"
        rows.append(
            f"| {r['profile']} | {r['engine']} | {r['written']} | {r['found']} / {r['missed']} / {r['false_written']} | {r['cer']} | "
            f"{r['cer_median']} | {exact} | {trusted} | {r['snapped_right']} / {r['snapped_wrong']} | {r['ms_per_crop']} | "
            f"{r['cer_sharp']} ({r['written_blurred']}) |"
        )
    return "\n".join(rows)


def trusted_summary(results: list[dict]) -> list[dict]:
    """Per engine, over every profile: the drafts at or above the trusted line and their CER."""
    out = []
    for label in dict.fromkeys(r["engine"] for r in results):
        rs = [r for r in results if r["engine"] == label and r["trusted"]]
        n = sum(r["trusted"] for r in rs)
        written = sum(r["written"] for r in results if r["engine"] == label)
        c = sum(r["cer_trusted"] * r["trusted"] for r in rs) / n if n else None
        out.append({"engine": label, "trusted": n, "written": written, "cer_trusted": round(c, 4) if c is not None else None})
    return out


def speed_table(s: dict) -> str:
    rows = ["| OCR | pages | passes | read s | pages/s | OCR ms/crop | total s (with workbook) |", "|---|---|---|---|---|---|---|"]
    for r in s["runs"].values():
        rows.append(f"| {r['ocr']} | {r['pages']} | {r['passes']} | {r['read_s']} | {r['pages_per_s']} | {r['ocr_ms_per_crop']} | {r['total_s']} |")
    rows.append("")
    rows.append(f"{s['jobs']} workers on {s['cpus']} CPUs; load average {s['load_average']} (other work on the machine slows the wall-clock figures).")
    rows.append(f"CPU time of a whole `exitscan process --jobs 1` run (start-up and workbook included), and what it means on {s['jobs']} idle cores:")
    rows.append("")
    rows.append("| OCR | CPU s | CPU s/page | pages/s on idle cores | OCR CPU ms/crop |")
    rows.append("|---|---|---|---|---|")
    for k, c in s["cpu"].items():
        rows.append(f"| {k} | {c['cpu_s']} | {c['cpu_s_per_page']} | {c['idle_pages_per_s']} | {c.get('ocr_cpu_ms_per_crop')} |")
    rows.append("")
    rows.append("OCR CPU ms/crop: (CPU s of the run with the engine - CPU s with OCR off) / crops read: what OCR")
    rows.append("costs on an idle core, model loading included (the wall-clock ms/crop above stretches with the machine's load).")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passes", type=int, default=80)
    ap.add_argument("--profiles", default=",".join(DEFAULT_PROFILES), help="simulator profiles, and hard (every writer jitters)")
    ap.add_argument("--engines", default="", help="OCR engines to compare (default: every one installed)")
    ap.add_argument("--speed-passes", type=int, default=80, help="0: skip the speed run")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--keep", action="store_true", help="keep the simulated scans and results")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ocr-work-", dir=args.out))
    results, speed = [], None
    engines = installed_engines([e for e in args.engines.split(",") if e] or None)
    if not engines:
        print("ocr.py: no OCR engine is installed (see above)", file=sys.stderr)
        return 1
    try:
        for profile in [p for p in args.profiles.split(",") if p]:
            for r in run_profile(profile, args.passes, args.seed, args.jobs, work, engines):
                results.append(r)
                print(f"{profile} {r['engine']}: CER {r['cer']} over {r['written']} written passes, {r['ms_per_crop']} ms/crop", file=sys.stderr)
        if args.speed_passes:
            speed = run_speed(args.speed_passes, args.seed, args.jobs, work, engines)
    finally:
        if args.keep:
            print(f"kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    default = engines[0][1]
    lines = ["## Next steps: crops and OCR drafts", "", table(results), "",
             f"Trusted: confidence >= {LOW_CONFIDENCE}. Default engine (auto): {default}.", ""]
    for r in results:
        want = TARGET_CER.get(r["profile"])
        if r["engine"] == default and want is not None and r["cer"] is not None:
            lines.append(f"- {default}, {r['profile']}: CER {r['cer']} (target <= {want}): {'PASS' if r['cer'] <= want else 'MISS'}")
    for t in trusted_summary(results):
        ok = t["cer_trusted"] is not None and t["cer_trusted"] <= TARGET_TRUSTED_CER
        lines.append(f"- {t['engine']}, trusted drafts over every profile: {t['trusted']} of {t['written']}, CER {t['cer_trusted']} "
                     f"(target <= {TARGET_TRUSTED_CER}): {'PASS' if ok else 'MISS'}")
    if speed:
        lines += ["", "## Speed with OCR", "", speed_table(speed), ""]
        for name, _label in engines:
            pps = speed["runs"][name]["pages_per_s"] or 0
            idle = speed["cpu"][name]["idle_pages_per_s"] or 0
            lines.append(f"- {name}: {pps} pages/s, wall clock (target >= {TARGET_PAGES_PER_S}): {'PASS' if pps >= TARGET_PAGES_PER_S else 'MISS'}; "
                         f"{idle} pages/s from CPU time on idle cores: {'PASS' if idle >= TARGET_PAGES_PER_S else 'MISS'}")
    text = "\n".join(lines)
    print(text)
    (args.out / "ocr.md").write_text(text + "\n", encoding="utf-8")
    (args.out / "ocr.json").write_text(json.dumps({"engines": engines, "profiles": results, "trusted": trusted_summary(results), "speed": speed}, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
