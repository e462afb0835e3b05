"""Accuracy benchmark: simulate scans with known truth, read them, count what came out right.

For each scan profile, N passes are simulated (`exitscan.simulate.make_batch`), read with
`exitscan process` (the real pipeline) and compared pass by pass with the truth:

- accepted right: status ok and the rating is the truth's;
- flagged: status review (a person looks; never counted as wrong);
- silently wrong: status ok but the rating (or any criterion's) is not the truth's, or a
  pass read as a pupil (or lesson) that is not on any scanned pass: the worst bug this
  product can have;
- missing: a pass of the truth with no result row for its pupil (its code unread, so the
  row is flagged with no name, or the pass not found at all).

Clear passes (one clear mark per row, named pupil) should be accepted automatically. On a
black-and-white (1-bit) scan a mark in a pen lighter than the copier's cut-off (an orange
felt tip) may not be in the scan at all: no reader can accept it, and ours flags it ("a
light-coloured pen may not show, look at the paper"). Such passes are counted among the
clear ones, and also left out in a second figure, "clear accepted (legible)". Where such a
pen's mark vanished and left another face's as the only one, the reading is silently wrong
and counted so; the table says how many of those had a mark in a pen the scan can drop.

Also: the share of clear passes (one clear mark, named pupil) accepted automatically, the
share of pass codes read, and every input page accounted for. Prints a markdown table and
writes JSON.

``--cases hard`` simulates a stress set instead of a class: mostly the cases a reader can
get wrong (two faces marked, a mark scribbled out and another made, nothing marked), for
the "zero silently wrong" target; its "clear" figures are few and say little.

    python benchmarks/accuracy.py [--passes 200] [--profiles copier,bw-copier,...] [--out bench-out]
                                  [--cases class|hard] [--keep [--reuse]]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from exitscan.ocr.base import OcrOptions
from exitscan.pipeline import ProcessOptions, run_batch
from exitscan.simulate import PROFILES, make_batch
from exitscan.simulate.ink import hex_rgb
from exitscan.simulate.scan import BW_THRESHOLDS

DEFAULT_PROFILES = ("copier", "bw-copier", "low-quality", "phone", "mono-printer")
#: Case mixes: a class as the simulator's pupils fill passes in (mostly one clear mark), or a
#: stress set of hard cases.
CASE_MIXES: dict[str, dict[str, float] | None] = {
    "class": None,
    "hard": {"clear": 0.2, "none": 0.15, "multiple": 0.4, "corrected": 0.25},
}


def _key(lesson_key: str, student_id: str, serial: int) -> tuple[str, str]:
    return (lesson_key, student_id if student_id else f"spare#{serial}")


def _legible(page: dict, marks: list[dict]) -> bool:
    """Whether a pass's marks can be in its scan: not so on 1-bit pages for pens lighter
    than the lowest black-and-white cut-off the simulator uses."""
    if page.get("mode") != "1":
        return True
    for m in marks:
        r, g, b = hex_rgb(m["colour"])
        if 0.299 * r + 0.587 * g + 0.114 * b >= BW_THRESHOLDS[0]:
            return False
    return True


def evaluate(truth: dict, batch) -> dict:
    """Compare a batch's results with its truth document; returns counts and examples."""
    by_key = {}
    for p in batch.passes:
        if p.code is not None:
            by_key[_key(p.code.lesson_key, p.code.student_id, p.code.serial)] = p
    unidentified = [p for p in batch.passes if p.code is None]
    counts = dict.fromkeys(
        ("passes", "accepted_right", "flagged", "silently_wrong", "missing", "clear", "clear_accepted",
         "clear_legible", "clear_legible_accepted", "codes_read", "silently_wrong_lost"),
        0,
    )
    wrong_examples, missing_examples = [], []
    pages_in, pages_out = 0, set()
    for p in batch.passes:
        pages_out.add((p.source, p.page))
    for pr in batch.problems:
        pages_out.add((pr.source, pr.page))
    for f in truth["files"]:
        for page in f["pages"]:
            pages_in += 1
            if (f["file"], page["page"]) not in pages_out:
                missing_examples.append(f"page not accounted for: {f['file']} p{page['page']}")
            for t in page["passes"]:
                counts["passes"] += 1
                # Clear: one clear mark on a named pass; what should be accepted automatically.
                clear = t["case"] == "clear" and not t["spare"] and not t["review"]
                legible = clear and _legible(page, t["marks"])
                counts["clear"] += clear
                counts["clear_legible"] += legible
                r = by_key.get(_key(t["lesson_key"], t["student_id"], t["serial"]))
                if r is None:
                    counts["missing"] += 1
                    missing_examples.append(f"{f['file']} p{page['page']} serial {t['serial']} ({t['case']})")
                    continue
                counts["codes_read"] += 1
                if t.get("criteria"):  # rated per criterion; the overall rating derives
                    right = list(r.row_ratings) == list(t["criteria"])
                else:
                    right = r.rating == t["rating"]
                if r.status == "review":
                    counts["flagged"] += 1
                elif right:
                    counts["accepted_right"] += 1
                    counts["clear_accepted"] += clear
                    counts["clear_legible_accepted"] += legible
                else:
                    counts["silently_wrong"] += 1
                    # A light pen a 1-bit scan can drop: the answer may not be in the file at all.
                    counts["silently_wrong_lost"] += not _legible(page, t["marks"])
                    wrong_examples.append(
                        f"{f['file']} p{page['page']} serial {t['serial']}: truth {t['rating']} "
                        f"{t.get('criteria') or ''} ({t['case']}, {t['marks']}) read {r.rating} {r.row_ratings} {r.scores}"
                    )
    # A code read as a pass that was never scanned (another pupil, another lesson): wrong.
    truth_keys = {
        _key(t["lesson_key"], t["student_id"], t["serial"]) for f in truth["files"] for pg in f["pages"] for t in pg["passes"]
    }
    for key, p in by_key.items():
        if key not in truth_keys:  # (flagged or not: a review is about the marks, the name is trusted)
            counts["silently_wrong"] += 1
            wrong_examples.append(f"{p.source} p{p.page} pass {p.position}: read as {key}, not a pass of this batch")
    # A pass whose code was not read has no pupil, so it can't be matched to the truth: it
    # counts as missing above, and here as what it is, a result row flagged for a person.
    counts["unidentified_flagged"] = len(unidentified)
    counts["pages"] = pages_in
    counts["pages_accounted"] = pages_in - sum(1 for m in missing_examples if m.startswith("page not"))
    return {"counts": counts, "silently_wrong": wrong_examples[:20], "missing": missing_examples[:20]}


def run_profile(
    profile: str, passes: int, seed: int, jobs: int, work: Path, reuse: bool = False, cases: str = "class"
) -> dict:
    folder = work / profile
    t0 = time.perf_counter()
    kept = folder / "scans" / "truth.json"
    if reuse and kept.is_file():  # the same simulated scans again, e.g. after tuning the reader
        truth = json.loads(kept.read_text(encoding="utf-8"))
    else:
        truth = make_batch(
            folder / "scans",
            n_passes=passes,
            profile=profile,
            template="mixed",
            formats="mixed",
            seed=seed,
            jobs=jobs,
            case_mix=CASE_MIXES[cases],
        )
    t_sim = time.perf_counter() - t0
    # OCR is measured by benchmarks/ocr.py; here only faces, codes and pages count.
    batch = run_batch(ProcessOptions((folder / "scans",), folder / "out", jobs=jobs, ocr=OcrOptions(engine="none")))
    res = evaluate(truth, batch)
    res["profile"] = profile
    res["cases"] = cases
    res["simulate_seconds"] = round(t_sim, 1)
    res["process_seconds"] = round(batch.seconds, 1)
    return res


def table(results: list[dict]) -> str:
    head = (
        "| profile | passes | accepted right | flagged | silently wrong | missing | clear accepted | "
        "clear accepted (legible) | codes read | pages accounted |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in results:
        c = r["counts"]
        clear = f"{c['clear_accepted']}/{c['clear']} ({100 * c['clear_accepted'] / max(c['clear'], 1):.1f}%)"
        clear += (
            f" | {c['clear_legible_accepted']}/{c['clear_legible']} "
            f"({100 * c['clear_legible_accepted'] / max(c['clear_legible'], 1):.1f}%)"
        )
        codes = f"{100 * c['codes_read'] / max(c['passes'], 1):.1f}%"
        wrong = f"{c['silently_wrong']}"
        if c.get("silently_wrong_lost"):
            wrong += f" ({c['silently_wrong_lost']} with a light pen the 1-bit scan dropped)"
        lines.append(
            f"| {r['profile']} | {c['passes']} | {c['accepted_right']} | {c['flagged']} | {wrong} | "
            f"{c['missing']} | {clear} | {codes} | {c['pages_accounted']}/{c['pages']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passes", type=int, default=200)
    ap.add_argument("--profiles", default=",".join(DEFAULT_PROFILES))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--keep", action="store_true", help="keep the simulated scans and results (in OUT/accuracy-work)")
    ap.add_argument("--reuse", action="store_true", help="with --keep: read the kept scans again instead of simulating")
    ap.add_argument("--cases", choices=sorted(CASE_MIXES), default="class", help="a class's passes, or a stress set of hard cases")
    a = ap.parse_args(argv)
    profiles = [p for p in a.profiles.split(",") if p]
    for p in profiles:
        if p not in PROFILES:
            ap.error(f"unknown profile {p}; the profiles are {', '.join(PROFILES)}")
    a.out.mkdir(parents=True, exist_ok=True)
    work_root = a.out / "accuracy-work" if a.keep else Path(tempfile.mkdtemp(prefix="exitscan-acc-"))
    results = [run_profile(p, a.passes, a.seed, a.jobs, work_root, a.reuse and a.keep, a.cases) for p in profiles]
    md = f"Cases: {a.cases} ({'as a class fills passes in' if a.cases == 'class' else 'a stress set of hard cases'}), seed {a.seed}.\n\n"
    md += table(results)
    print(md)
    for r in results:
        for w in r["silently_wrong"]:
            print(f"SILENTLY WRONG [{r['profile']}]: {w}", file=sys.stderr)
    (a.out / "accuracy.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    (a.out / "accuracy.md").write_text(md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
