"""Reading one page: a pure step from a page image to a small, typed result.

`read_page` registers every pass on the page, identifies it from its QR code, reads the
faces (and criteria rows, tick boxes), cuts the handwriting crops, and returns a
`PageResult`. It writes nothing: the parent process collects results and alone writes
files. Every decision keeps its evidence (scores, residuals) for tuning and for review.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from exitscan import payload
from exitscan.handwriting import CROP_PX_PER_MM, clean_area
from exitscan.identify import SymbolPoints, read_code, symbol_points
from exitscan.marks import (
    RowReading,
    TickReading,
    ink_map,
    is_bilevel,
    read_region,
    read_row,
    read_ticks,
    row_printed,
    smoothed,
)
from exitscan.ocr import LOW_CONFIDENCE, OcrEngine
from exitscan.ocr import draft as ocr_draft
from exitscan.reference import READ_PX_PER_MM, reference
from exitscan.register import (
    Incomplete,
    Registration,
    find_markers,
    page_ink_fraction,
    refit,
    register_page,
    warp,
)
from exitscan.sharpness import page_blur_mm
from exitscan.template import (
    CORNERS,
    FACE_NAMES,
    Template,
    available_templates,
    load_template,
    template_by_code,
)

#: A page with less than this fraction of clearly dark pixels (and no markers) is blank.
BLANK_INK_FRACTION = 0.0015
#: Registration residual (mm) above which the reading is sent to review.
MAX_RESIDUAL_MM = 0.9

# Review reasons the export and the review tools recognise.
SPARE_REASON = "spare pass: name to confirm"


@dataclass(frozen=True)
class Problem:
    source: str
    page: int
    kind: str  # unreadable | blank | not-a-pass | duplicate | unsupported
    message: str


@dataclass(frozen=True)
class PassResult:
    source: str
    page: int
    position: int  # 1-based, reading order on the page
    code: payload.PassCode | None
    template: str
    rating: str
    row_ratings: tuple[str, ...]  # per criterion (criteria template), else empty
    ticks: tuple[int, ...]  # 0-based option indices ticked
    confidence: float
    status: str  # ok | review
    reason: str
    residual_mm: float
    corners_found: int
    scores: dict = field(default_factory=dict)  # raw evidence, JSON-able
    tick_texts: tuple[str, ...] = ()  # the options' text, when known (lesson record)
    writing_png: bytes = b""
    name_png: bytes = b""
    # The next step (exitscan.handwriting, exitscan.ocr). The crop is the record; the text a draft.
    next_step_written: bool = False  # anything written in the area (specks and a stray dot are not)
    next_step_text: str = ""  # OCR draft, one line; "" when nothing was written or OCR did not run
    next_step_confidence: float | None = None  # 0-1, the engine's; None when no engine read it
    next_step_match: str = ""  # the known next step the draft is closest to (filled by the parent)
    next_step_match_distance: float | None = None  # 0 = same words; see exitscan.nextsteps
    ocr_engine: str = ""  # "tesseract 5.3.0" when an engine read the crop
    ocr_seconds: float = 0.0  # time spent in the engine on this pass
    ocr_error: str = ""  # "timeout: ...", "crashed: ...", "unavailable: ...": the parent reports it once

    @property
    def next_step_trusted(self) -> bool:
        """The draft is confident enough to show as it is (else: shown, but marked for a look)."""
        return bool(self.next_step_text) and (self.next_step_confidence or 0.0) >= LOW_CONFIDENCE


@dataclass(frozen=True)
class PageResult:
    source: str
    page: int
    passes: tuple[PassResult, ...]
    problems: tuple[Problem, ...]
    seconds: float
    debug_png: bytes = b""
    bilevel: bool = False  # a black-and-white (1-bit) scan, where light-coloured pens can vanish
    blur_mm: float | None = None  # the markers' blur (`exitscan.sharpness`), measured when drafting text


_SEVERITY = {"green": 0, "orange": 1, "red": 2}


def _overall(rows: list[RowReading]) -> str:
    ratings = [r.rating for r in rows]
    if "multiple" in ratings:
        return "multiple"
    faces = [r for r in ratings if r in _SEVERITY]
    if not faces:
        return "none"
    return max(faces, key=lambda r: _SEVERITY[r])


def _guess_template(gray: np.ndarray, reg: Registration) -> Template:
    """Which template a pass is, when its code can't say: the best match with each blank."""
    best, best_score = None, -2.0
    for name in available_templates():
        ref = reference(name)
        t = ref.template
        seen = warp(gray, reg, 0, 0, t.size[0], t.size[1], 1.0)
        a = seen.astype(np.float32) - seen.mean()
        b = ref.small.astype(np.float32) - ref.small.mean()
        score = float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-6))
        if score > best_score:
            best, best_score = t, score
    assert best is not None
    return best


def _png(img: np.ndarray) -> bytes:
    # Fast zlib level and the "filtered" strategy: ~2 ms a crop instead of ~6-20 ms, ~10% larger.
    ok, buf = cv2.imencode(
        ".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_FILTERED]
    )
    return buf.tobytes() if ok else b""


def _refine_with_code(gray: np.ndarray, reg: Registration, template: Template) -> tuple[Registration, dict]:
    """A pass registered from three markers, fitted again with its QR code's four patterns.

    Three markers' corners leave the homography's perspective loosely fixed: on a phone photo
    the fit can be 1-3 mm off at the faces, far from the markers, while its residual stays
    low. The code's three finder centres and its alignment centre are four more points of
    the pass whose printed places are known; they join the markers' corners only when the
    joint fit leaves every point close (`exitscan.register.refit`), else the old fit stays.
    """
    points = symbol_points(gray, reg, template)
    if not isinstance(points, SymbolPoints):
        return reg, {"points": f"{reg.corners_found} markers", "used": False, "why": points}
    return refit(gray, reg, template, points.image_px, points.template_mm, "code_points")


def read_pass(
    gray: np.ndarray,
    reg: Registration,
    source: str,
    page: int,
    position: int,
    bilevel: bool = False,
    ocr: OcrEngine | None = None,
) -> PassResult:
    """Identify and read one registered pass. ``bilevel``: the page is a 1-bit scan;
    ``ocr``: the engine that drafts the next step's text (None: the crop only)."""
    ident = read_code(gray, reg, template_by_code("C"))
    code = ident.code
    reasons: list[str] = []
    if code is None:
        template = _guess_template(gray, reg)
        reasons.append(f"{ident.error}: whose pass is it?")
    else:
        try:
            template = template_by_code(code.template)
        except Exception:  # noqa: BLE001 - a code from a newer exitscan: say so, keep going
            template = _guess_template(gray, reg)
            reasons.append(f"the pass code names an unknown template ({code.template})")
    refined: dict = {}
    if code is not None and reg.corners_found < 4:
        reg, refined = _refine_with_code(gray, reg, template)
    ref = reference(template.name)
    t = template
    region = read_region(t)
    x0, y0, x1, y1 = region
    seen = warp(gray, reg, x0, y0, x1 - x0, y1 - y0, READ_PX_PER_MM)
    norm = ink_map(seen, ref, region)
    smooth = smoothed(norm, ref) if bilevel else None

    n_rows = 1
    if t.is_per_criterion:
        if code is not None and code.n_criteria:
            n_rows = min(code.n_criteria, t.max_criteria)
        else:  # no code to say how many criteria: count the rows printed
            n_rows = sum(row_printed(norm, ref, r, i) for i, r in enumerate(t.ratings)) or 1
    rows = [read_row(norm, ref, t.ratings[i], i, smooth) for i in range(n_rows)]
    for i, r in enumerate(rows):
        if not r.confident:
            where = f"criterion {i + 1}: " if t.is_per_criterion else ""
            reasons.append(where + r.reason)
    if bilevel and any(r.rating == "none" for r in rows):
        # Black-and-white copier mode drops light pens (orange, yellow, light green felt tips).
        reasons.append("black-and-white scan: a light-coloured pen may not show, look at the paper")
    ticks = TickReading((), (), ())
    if t.ticks is not None:
        ticks = read_ticks(norm, ref, t.ticks.boxes, len(t.ticks.boxes))
        if ticks.unclear:
            reasons.append("unclear tick box " + ", ".join(str(j + 1) for j in ticks.unclear))
    if reg.residual_mm > MAX_RESIDUAL_MM:
        reasons.append(f"the pass looks warped or creased (fit {reg.residual_mm:.1f} mm): check")
    if code is not None and code.is_spare:
        reasons.append(SPARE_REASON)

    rating = _overall(rows) if t.is_per_criterion else rows[0].rating
    confidence = min(r.confidence for r in rows)
    scores = {
        "rows": [[s.as_dict() for s in r.scores] for r in rows],
        "tick_fill": list(ticks.fill),
        "residual_mm": round(reg.residual_mm, 3),
        "px_per_mm": round(reg.px_per_mm, 2),
        "corners_found": reg.corners_found,
        "code": ident.evidence,
    }
    if refined:
        scores["refit"] = refined
    if reg.corners_found < 4:
        scores["missing_corner"] = [CORNERS[k] for k in reg.missing_corners]
    writing = clean_area(gray, reg, t.name, t.writing.box, CROP_PX_PER_MM, bilevel)
    name = clean_area(gray, reg, t.name, t.name_box, CROP_PX_PER_MM, bilevel) if (code is None or code.is_spare) else None
    scores["writing"] = writing.evidence
    if name is not None:
        scores["name_writing"] = name.evidence
    text = ocr_draft(writing, ocr)
    return PassResult(
        source=source,
        page=page,
        position=position,
        code=code,
        template=t.name,
        rating=rating,
        row_ratings=tuple(r.rating for r in rows) if t.is_per_criterion else (),
        ticks=ticks.ticked,
        confidence=round(float(confidence), 2),
        status="review" if reasons else "ok",
        reason="; ".join(dict.fromkeys(reasons)),
        residual_mm=round(reg.residual_mm, 3),
        corners_found=reg.corners_found,
        scores=scores,
        writing_png=writing.png(),
        name_png=name.png() if name is not None else b"",
        next_step_written=writing.written,
        next_step_text=text.text,
        next_step_confidence=text.confidence,
        ocr_engine=text.engine,
        ocr_seconds=text.seconds,
        ocr_error=text.error,
    )


def _debug_image(gray: np.ndarray, regs: list[Registration], incomplete: list[Incomplete], results: list[PassResult]) -> bytes:
    """The page with markers found, each pass's outline and its reading (annotated PNG)."""
    f = min(1.0, 1400 / max(gray.shape))
    img = cv2.cvtColor(cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2BGR)
    for reg, res in zip(regs, results):
        t = load_template(res.template)
        inv = reg.to_image()
        for m in reg.markers:
            cv2.polylines(img, [np.int32(m.corners * f)], True, (0, 160, 0), 2)
        quads = [((0, 0), (t.size[0], 0), (t.size[0], t.size[1]), (0, t.size[1]))]
        for row in t.ratings[: max(1, len(res.row_ratings))]:
            for face in row.faces:
                z = face.zone
                quads.append(((z.x, z.y), (z.right, z.y), (z.right, z.bottom), (z.x, z.bottom)))
        for q in quads:
            pts = cv2.perspectiveTransform(np.array([q], dtype=np.float64), inv)[0] * f
            cv2.polylines(img, [np.int32(pts)], True, (200, 80, 0), 1)
        org = cv2.perspectiveTransform(np.array([[[15.0, 50.0]]]), inv)[0, 0] * f
        colour = (0, 140, 0) if res.status == "ok" else (0, 0, 220)
        label = f"{res.rating} {res.confidence:.2f} {res.status}"
        cv2.putText(img, label, (int(org[0]), int(org[1])), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2)
    for inc in incomplete:
        for m in inc.markers:
            cv2.polylines(img, [np.int32(m.corners * f)], True, (0, 0, 255), 2)
    # Under the page: each registered pass as the reader saw it, zones and raw scores on it.
    panels = [img] + [_pass_panel(gray, reg, res, img.shape[1]) for reg, res in zip(regs, results)]
    return _png(np.vstack(panels))


def _pass_panel(gray: np.ndarray, reg: Registration, res: PassResult, width: int) -> np.ndarray:
    """One registered pass (template frame) with its face zones, ink per face and tick fills."""
    t = load_template(res.template)
    s = width / t.size[0]
    seen = warp(gray, reg, 0, 0, t.size[0], t.size[1], s)
    img = cv2.cvtColor(seen, cv2.COLOR_GRAY2BGR)
    rows = res.scores.get("rows", [])
    for ri, row_scores in enumerate(rows):
        for face, sc in zip(t.ratings[ri].faces, row_scores):
            z = face.zone
            marked = sc["ink_mm2"] > 0
            colour = (0, 0, 220) if marked else (200, 80, 0)
            cv2.rectangle(img, (int(z.x * s), int(z.y * s)), (int(z.right * s), int(z.bottom * s)), colour, 1)
            text = f"{sc['ink_mm2']:.1f}mm2 in{sc['inner']:.2f} ring{sc['ring']:.2f} d{sc['density']:.2f}"
            cv2.putText(img, text, (int(z.x * s) + 3, int(z.bottom * s) - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1)
    if t.ticks is not None:
        for b, fill in zip(t.ticks.boxes, res.scores.get("tick_fill", [])):
            cv2.rectangle(img, (int(b.x * s), int(b.y * s)), (int(b.right * s), int(b.bottom * s)), (0, 140, 0), 1)
            cv2.putText(img, f"{fill:.2f}", (int(b.right * s) + 2, int(b.bottom * s)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 140, 0), 1)
    who = res.code.student_name if res.code and res.code.student_name else "(no name)"
    head = f"{res.position}: {who} - {res.rating} {res.confidence:.2f} {res.status} {res.reason}"[:140]
    cv2.rectangle(img, (0, 0), (img.shape[1], 22), (255, 255, 255), -1)
    cv2.putText(img, head, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1)
    return img


def read_page(
    gray: np.ndarray,
    source: str,
    page: int,
    debug: bool = False,
    ocr: OcrEngine | None = None,
    dpi: float | None = None,
) -> PageResult:
    """Read every pass on one page image ((rows, cols) uint8). Never raises for bad content.

    ``ocr``: the engine that drafts each next step's text (None: crops only); ``dpi``: the
    image's resolution when the file says it (None for photos), which only speeds things up."""
    start = time.perf_counter()
    classic = load_template("classic")
    markers = find_markers(gray, dpi / 25.4 if dpi else None)
    regs, incomplete = register_page(gray, lambda g: classic, markers)
    problems: list[Problem] = []
    bilevel = is_bilevel(gray[::3, ::3]) if regs else False
    results = [read_pass(gray, reg, source, page, i + 1, bilevel, ocr) for i, reg in enumerate(regs)]
    for inc in incomplete:
        seen = ", ".join(CORNERS[m.corner] for m in sorted(inc.markers, key=lambda m: m.corner))
        problems.append(
            Problem(
                source,
                page,
                "unreadable",
                f"{source} page {page}: part of a pass was found ({seen} marker only), too little "
                "to read it safely — is the pass folded, covered or cut off? Rescan it flat.",
            )
        )
    if not regs and not incomplete:
        if page_ink_fraction(gray) < BLANK_INK_FRACTION:
            problems.append(Problem(source, page, "blank", f"{source} page {page}: blank page (a duplex back?)"))
        else:
            problems.append(
                Problem(
                    source,
                    page,
                    "not-a-pass",
                    f"{source} page {page}: no pass markers found — is this an exit pass? "
                    "(if it is, rescan it: the four black corner squares must be visible)",
                )
            )
    # How smeared the page is decides how good its drafts can be (~1 ms: only when drafting).
    blur = page_blur_mm(gray, markers, classic.marker_size) if (ocr is not None and regs) else None
    dbg = _debug_image(gray, regs, incomplete, results) if debug else b""
    return PageResult(source, page, tuple(results), tuple(problems), time.perf_counter() - start, dbg, bilevel, blur)


__all__ = ["FACE_NAMES", "PageResult", "PassResult", "Problem", "read_page"]
