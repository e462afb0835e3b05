"""Ground truth of simulated scans: what is on every page, and what a correct reader says.

Written as ``truth.json`` beside a batch (schema ``exitscan-simulator-truth/1``)::

    {"schema": ..., "seed": 7, "options": {...},
     "summary": {"files": 3, "pages": 12, "passes": 30, "blank_pages": 2, "cases": {...}},
     "files": [{"file": "scan_001.pdf", "format": "pdf", "profile": "copier",
                "template": "classic", "lesson_key": "a3f9c2", "pages": [
        {"page": 1, "kind": "pass" | "blank", "sheet": 0, "back_of": null | 1,
         "profile": "copier", "printer": "colour" | "mono-laser", "orientation": 180,
         "skew_deg": -1.3, "dpi": 300, "mode": "rgb" | "gray" | "1", "size_px": [2481, 3508],
         "encoding": "jpeg" | "g4" | "lossless", "jpeg_quality": 85,
         "passes": [{"serial": 4, "slot": 0, "student_id": "p3b-05", "student_name": "...",
                     "class_name": "P3B", "lesson": "...", "date": "2026-11-23",
                     "lesson_key": "a3f9c2", "template": "classic", "spare": false,
                     "case": "clear" | "none" | "multiple" | "corrected",
                     "rating": "green" | "orange" | "red" | "none" | "multiple" | null,
                     "review": false, "criteria": null | ["green", ...],
                     "criteria_cases": null | ["clear", ...],
                     "marks": [{"row": 0, "face": "green", "kind": "circle",
                                "instrument": "pencil", "colour": "#4a4a50", "loops": 1,
                                "label": false, "stray": false}],
                     "ticks": [1], "tick_marks": [{"option": 1, "kind": "tick", ...}],
                     "next_step": "I need to use more adjectives.", "next_step_lines": [...],
                     "writing": {"instrument": ..., "font": ..., "hard": false} | null,
                     "spare_name": "",
                     "bbox": [x0, y0, x1, y1], "corners": [[x, y] x4], "homography": 3x3}]}]}]}

``rating`` is what a correct reader reports for the pass's rating row: the face; ``none``
when nothing is marked; ``multiple`` when two faces are; for ``corrected`` (one circled,
scribbled out, another circled) the final face. ``review`` is true for every case but
``clear``, and for a clear pass with a face coloured in so loosely (a stray fill) that the
colouring covers the face's label and the space around it, as big as scribbling-out and
looking the same: the reader should flag those, never guess. Per-criterion templates have no overall
row: ``rating`` is null and ``criteria`` holds one rating per criterion row (``case`` is
``clear`` when every row is, else the first row's case that is not). ``ticks`` are 0-based
option indices. Geometry is in page pixels, OpenCV's convention (pixel centres at integers),
after orientation, skew and perspective: ``homography`` maps pass millimetres (the template's
frame) to page pixels; ``corners`` are the pass's top-left, top-right, bottom-right and
bottom-left; ``bbox`` may reach outside the page when a skewed sheet was cut.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

SCHEMA = "exitscan-simulator-truth/1"
RATINGS = ("green", "orange", "red", "none", "multiple")
CASES = ("clear", "none", "multiple", "corrected")
KINDS = ("pass", "blank")
ENCODINGS = ("jpeg", "g4", "lossless")
FORMATS = ("pdf", "tiff", "jpeg", "png")


@dataclass
class PassTruth:
    serial: int
    slot: int
    student_id: str
    student_name: str
    class_name: str
    lesson: str
    date: str
    lesson_key: str
    template: str
    spare: bool
    case: str
    rating: str | None
    review: bool
    criteria: list[str] | None
    criteria_cases: list[str] | None
    marks: list[dict]
    ticks: list[int]
    tick_marks: list[dict]
    next_step: str
    next_step_lines: list[str]
    writing: dict | None
    spare_name: str
    bbox: list[float]
    corners: list[list[float]]
    homography: list[list[float]]


@dataclass
class PageTruth:
    page: int  # 1-based within its file
    kind: str
    sheet: int | None  # the sheet of the print run (None on a blank back)
    back_of: int | None  # a blank back in a multi-page file: the page number of its front
    profile: str
    printer: str
    orientation: int
    skew_deg: float
    dpi: int
    mode: str
    size_px: list[int]
    encoding: str
    jpeg_quality: int | None
    passes: list[PassTruth] = field(default_factory=list)


@dataclass
class FileTruth:
    file: str  # relative to the batch folder, with "/" separators
    format: str
    profile: str
    template: str
    lesson_key: str
    pages: list[PageTruth] = field(default_factory=list)


def summarise(files: list[FileTruth]) -> dict:
    pages = [p for f in files for p in f.pages]
    passes = [ps for p in pages for ps in p.passes]
    cases: dict[str, int] = {c: 0 for c in CASES}
    ratings: dict[str, int] = {}
    for ps in passes:
        cases[ps.case] += 1
        key = str(ps.rating)
        ratings[key] = ratings.get(key, 0) + 1
    profiles: dict[str, int] = {}
    for p in pages:
        profiles[p.profile] = profiles.get(p.profile, 0) + 1
    return {
        "files": len(files),
        "pages": len(pages),
        "passes": len(passes),
        "blank_pages": sum(1 for p in pages if p.kind == "blank"),
        "cases": cases,
        "ratings": dict(sorted(ratings.items())),
        "pages_by_profile": dict(sorted(profiles.items())),
    }


def to_json(seed: int, options: dict, files: list[FileTruth]) -> dict:
    return {
        "schema": SCHEMA,
        "seed": seed,
        "options": options,
        "summary": summarise(files),
        "files": [asdict(f) for f in files],
    }


def write_truth(path: Path, data: dict) -> None:
    """Write ``truth.json`` atomically (a temporary file renamed into place)."""
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def validate_truth(data: dict, folder: Path | None = None) -> list[str]:
    """Problems with a truth document, in plain words (empty: it is valid).

    Checks the schema's shape and vocabularies and that ratings agree with cases; with
    ``folder``, also that every file it names exists there.
    """
    problems: list[str] = []

    def need(cond: bool, msg: str) -> None:
        if not cond:
            problems.append(msg)

    need(data.get("schema") == SCHEMA, f"schema is {data.get('schema')!r}, expected {SCHEMA!r}")
    need(isinstance(data.get("seed"), int), "seed is not an integer")
    files = data.get("files")
    if not isinstance(files, list):
        return problems + ["files is not a list"]
    n_pages = n_passes = 0
    for f in files:
        where = f.get("file", "?")
        need(isinstance(where, str) and where and not where.startswith("/"), f"{where}: file must be a relative path")
        need(f.get("format") in FORMATS, f"{where}: unknown format {f.get('format')!r}")
        if folder is not None:
            need((folder / where).is_file(), f"{where}: no such file in {folder}")
        pages = f.get("pages", [])
        need(bool(pages), f"{where}: no pages")
        need([p.get("page") for p in pages] == list(range(1, len(pages) + 1)), f"{where}: pages not numbered 1..n")
        if f.get("format") in ("jpeg", "png"):
            need(len(pages) == 1, f"{where}: a single-image file holds {len(pages)} pages")
        for p in pages:
            n_pages += 1
            pw = f"{where} page {p.get('page')}"
            need(p.get("kind") in KINDS, f"{pw}: unknown kind {p.get('kind')!r}")
            need(p.get("orientation") in (0, 90, 180, 270), f"{pw}: bad orientation")
            need(p.get("mode") in ("rgb", "gray", "1"), f"{pw}: bad mode")
            need(p.get("encoding") in ENCODINGS, f"{pw}: bad encoding")
            need(isinstance(p.get("dpi"), int) and p["dpi"] > 0, f"{pw}: bad dpi")
            size = p.get("size_px")
            need(isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size), f"{pw}: bad size_px")
            if p.get("kind") == "blank":
                need(not p.get("passes"), f"{pw}: a blank page with passes")
                continue
            need(bool(p.get("passes")), f"{pw}: a pass page without passes")
            for ps in p.get("passes", []):
                n_passes += 1
                qw = f"{pw} serial {ps.get('serial')}"
                need(ps.get("case") in CASES, f"{qw}: unknown case {ps.get('case')!r}")
                crit = ps.get("criteria")
                if crit is None:
                    need(ps.get("rating") in RATINGS, f"{qw}: unknown rating {ps.get('rating')!r}")
                    case, rating = ps.get("case"), ps.get("rating")
                    need(
                        (case == "clear" and rating in RATINGS[:3])
                        or (case == "none" and rating == "none")
                        or (case == "multiple" and rating == "multiple")
                        or (case == "corrected" and rating in RATINGS[:4]),
                        f"{qw}: rating {rating!r} does not fit case {case!r}",
                    )
                else:
                    need(ps.get("rating") is None, f"{qw}: a per-criterion pass with an overall rating")
                    need(all(r in RATINGS for r in crit), f"{qw}: unknown criterion rating")
                need(ps.get("review") == (ps.get("case") != "clear"), f"{qw}: review does not match case")
                need(all(isinstance(t, int) and t >= 0 for t in ps.get("ticks", [])), f"{qw}: bad ticks")
                need(len(ps.get("corners", [])) == 4, f"{qw}: corners must be 4 points")
                bb = ps.get("bbox", [])
                need(len(bb) == 4 and bb[0] < bb[2] and bb[1] < bb[3], f"{qw}: bad bbox")
                h = ps.get("homography", [])
                need(len(h) == 3 and all(len(r) == 3 for r in h), f"{qw}: homography must be 3x3")
                need(ps.get("spare") == (ps.get("student_id") == ""), f"{qw}: spare flag does not match the id")
    summary = data.get("summary", {})
    need(summary.get("pages") == n_pages, "summary.pages does not match the pages listed")
    need(summary.get("passes") == n_passes, "summary.passes does not match the passes listed")
    return problems


def load_truth(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
