"""Handwriting areas: cut, clean, trim, and decide whether anything was written.

A pupil writes their next step on ruled lines under a printed label ("My next step:"), and a
spare pass's name in a printed box. `clean_area` cuts such an area from a registered pass
and removes what the printer put there, knowing exactly where it is from the template's own
blank rendering (`exitscan.reference`):

- the paper is flattened (phone shadows, copier tone) so ink is measured against the paper
  right beside it;
- the print is located where registration says it is, refined by a small search (the pass
  may sit a fraction of a millimetre off);
- a ruled line is *divided out*, strip by strip, with its own measured profile: a stroke
  crossing the line is darker than the line alone, so it survives with its full shape; only
  where the line is printed (or scanned) solid black is there nothing to divide, and there
  the line is inpainted from the pixels above and below, which bridges crossing strokes;
- labels and box outlines are masked and inpainted the same way;
- a strip's line is a low percentile of its columns (strokes only add ink), so letters sitting
  on the line and a crossbar lying along it are not taken for the line;
- what is left is thresholded with hysteresis into strokes; specks, dust and a lone dot are
  dropped (a full stop or an i's dot next to writing is kept); that decides "written";
- a written area's strokes are then found again at thresholds set by the pupil's own pencil
  (light letters of a blurred scan stay in), with a dark sliver on a line beside the writing
  kept as a stroke, print left beside the label by a slightly wrong alignment dropped, and on
  a 1-bit scan the pencil dots strung to the writing kept;
- the crop is trimmed to the writing with a margin and contrast-stretched so light pencil
  reads as well as felt tip.

Arrays are (rows, cols); images uint8 with 255 = paper; ink maps float32 in [0, 1] with
1 = black. Every size is in millimetres of the template and converted with ``px_per_mm``.
Nothing here knows about OCR: `exitscan.ocr` reads what `WritingCrop.for_ocr` hands it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

import cv2
import numpy as np

from exitscan.reference import reference
from exitscan.register import Registration, warp
from exitscan.template import Rect

#: Resolution handwriting is cut at (~150 dpi): what a copier scan holds once loaded (pages
#: are read at ~150 dpi: a 4-up pass has ~5.5 px per template mm), legible, the scale OCR
#: reads at anyway, and 0.56x the pixels of 8 px/mm to clean and store.
CROP_PX_PER_MM = 6.0
#: OCR engines are given the writing at this scale (Tesseract read these crops best at ~6).
OCR_PX_PER_MM = 6.0
#: How far (mm) the print is searched for around where registration puts it.
SEARCH_MM = 1.5
#: White margin (mm) kept around the writing when a crop is trimmed.
MARGIN_MM = 2.0
#: Width (mm) of the strips a ruled line is measured in (it may tilt or bow slightly).
STRIP_MM = 10.0
#: A ruled-line profile this dark (ink fraction) is solid: nothing to divide out, inpaint it.
SOLID_RULE = 0.75
#: A strip's ruled line is this percentile of its columns (strokes only add ink to a column).
RULE_PERCENTILE = 15
#: On 1-bit scans, gaps this wide (mm) between dots of a pencil stroke are bridged before
#: strokes are looked for.
BILEVEL_BRIDGE_MM = 0.4
#: Once a 1-bit area is written, dots strung to its strokes by gaps up to this (mm) are shown too.
BILEVEL_CHAIN_MM = 1.6
#: A stroke is stretched to black against the darkest ink within this (mm), but never more
#: than this ink level above the base (so the faint edge of a stroke stays soft).
LOCAL_PEAK_MM = 1.2
LOCAL_PEAK_FLOOR = 0.10
#: In a written area, a sliver along a ruled line this dark (ink, after the line is divided
#: out) is a stroke lying on the line (a t's crossbar), not what is left of the line. (Line
#: remnants measured up to ~0.43 on phone and copier scans; the decision "written" never uses this.)
ON_RULE_STROKE = 0.45
#: Ink wholly within this distance (mm) of a printed label or outline, in an area that is
#: written, is print left over by a slightly wrong alignment: dropped from the picture.
PRINT_REACH_MM = 1.0
#: A blob of ink smaller than this (longest side, mm) is a speck or a dot, not a stroke.
MIN_STROKE_MM = 1.6
#: Writing needs strokes spanning at least this much (mm, union of strokes, wider side)...
MIN_WRITING_MM = 4.0
#: ...and at least this much ink (mm^2 of stroke pixels).
MIN_WRITING_INK_MM2 = 2.0
#: Faint writing: at least this many small blobs, strung over at least this width (mm).
FAINT_MIN_BLOBS = 12
FAINT_SPREAD_MM = 15.0
#: Small blobs within this distance (mm) of a stroke are dots of i's and full stops: kept.
DOT_REACH_MM = 3.0
#: A stroke pixel is at least this dark (ink fraction), or this many noise-sigmas above paper.
STROKE_HIGH = 0.22
STROKE_LOW = 0.09
NOISE_SIGMAS = (7.0, 4.0)
#: Once an area is written, a stroke as light as this fraction of the writing's own level (and
#: at least RELAXED_HIGH, with pixels above RELAXED_LOW) is kept in the picture too.
RELAXED_FRACTION = 0.4
RELAXED_HIGH = 0.10
RELAXED_LOW = 0.05


@dataclass(frozen=True)
class WritingCrop:
    """A cleaned handwriting area and the evidence behind "written or not".

    ``image``: (rows, cols) uint8, 255 = paper. When ``written``, the cleaned writing (print
    removed, specks dropped, trimmed with a margin, contrast-stretched); otherwise the whole
    area as scanned, paper flattened and print kept, so a person can see it is empty.
    ``box_mm``: where ``image`` lies on the pass, template mm (x, y, w, h).
    """

    image: np.ndarray
    written: bool
    box_mm: tuple[float, float, float, float]
    px_per_mm: float
    evidence: dict = field(default_factory=dict)  # JSON-able scores: ink, extent, specks, print shift

    @property
    def reason(self) -> str:
        """Why the area counts as empty (plain words), or "" when written."""
        return "" if self.written else str(self.evidence.get("empty_because", "nothing written"))

    @property
    def lines(self) -> int:
        """Lines of writing seen (0 when nothing was written)."""
        return int(self.evidence.get("lines", 0)) if self.written else 0

    def png(self) -> bytes:
        # No row filter and run-length zlib at its fastest level: a cleaned crop is long runs
        # of white paper (an empty one 32 grey levels), which need neither. 0.15-0.2 ms a crop
        # and ~10% smaller, against 0.55-1.2 ms with libpng's adaptive filters.
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
        ok, buf = cv2.imencode(".png", self.image, params)
        return buf.tobytes() if ok else b""

    def for_ocr(self, px_per_mm: float = OCR_PX_PER_MM, upright: bool = True, border_mm: float = 2.5) -> np.ndarray:
        """The cleaned writing for an OCR engine: (rows, cols) uint8, dark text on white.

        Resampled to ``px_per_mm``, slant removed (``upright``), with a white border (OCR
        engines find a text's edges better with paper around it). Empty when nothing was written.
        """
        if not self.written:
            return np.zeros((0, 0), np.uint8)
        img = self.image
        if abs(px_per_mm - self.px_per_mm) > 1e-6:
            f = px_per_mm / self.px_per_mm
            img = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
        if upright:
            img = deslant(img)
        b = max(1, round(border_mm * px_per_mm))
        return cv2.copyMakeBorder(img, b, b, b, b, cv2.BORDER_CONSTANT, value=255)


def slant_of(image: np.ndarray, max_deg: float = 30.0, step_deg: float = 5.0) -> float:
    """The writing's slant in degrees (positive: leaning right), from the shear that makes
    its strokes most upright (the sharpest column profile). ``image``: uint8, 255 = paper."""
    ink = (255.0 - cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA).astype(np.float32)) / 255.0
    h, w = ink.shape
    if h < 4 or w < 4:
        return 0.0
    best, best_score = 0.0, -1.0
    for a in np.arange(-max_deg, max_deg + 1e-6, step_deg):
        t = float(np.tan(np.radians(a)))
        sheared = cv2.warpAffine(ink, np.float32([[1, t, -t * h / 2], [0, 1, 0]]), (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
        col = sheared.sum(axis=0)
        score = float(col @ col)
        if score > best_score + 1e-9:
            best, best_score = float(a), score
    return best


def deslant(image: np.ndarray) -> np.ndarray:
    """``image`` (uint8, 255 = paper) sheared so its writing stands upright (wider by the shear)."""
    a = slant_of(image)
    if a == 0.0:
        return image
    h, w = image.shape
    t = float(np.tan(np.radians(a)))
    pad = int(abs(t) * h / 2) + 2
    m = np.float32([[1, t, -t * h / 2 + pad], [0, 1, 0]])
    return cv2.warpAffine(image, m, (w + 2 * pad, h), flags=cv2.INTER_LINEAR, borderValue=255)


# --------------------------------------------------------------------------- pieces


def flatten_paper(gray: np.ndarray, px_per_mm: float) -> np.ndarray:
    """Ink map of a grey area: (rows, cols) float32 in [0, 1], 0 = the local paper.

    The paper level is a grey closing (it removes anything darker and narrower than ~3 mm:
    strokes, print), smoothed, so shadows and uneven copier tone divide out.
    """
    return _flatten(gray, px_per_mm)[0]


def _flatten(gray: np.ndarray, px_per_mm: float) -> tuple[np.ndarray, float]:
    """`flatten_paper`, and the paper's noise (standard deviation, ink units)."""
    f = gray.astype(np.float32)
    scale = min(1.0, 2.0 / px_per_mm)  # the paper level is smooth: estimate it at ~2 px/mm
    small = cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else f
    k = max(3, round(3.0 * px_per_mm * scale)) | 1
    bg = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    bg = cv2.GaussianBlur(bg, (0, 0), max(1.0, 1.5 * px_per_mm * scale))
    if scale < 1:
        bg = cv2.resize(bg, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_LINEAR)
    # ink = 1 - f / max(bg, 1), in place (the crop's few full-size arrays are most of its cost).
    ink = np.divide(f, np.maximum(bg, 1.0, out=bg), out=f)
    np.subtract(1.0, ink, out=ink)
    # The closing sits on the paper's bright noise peaks: level the paper itself to 0 ink.
    # Most of an area is paper, so the median is paper; the paper side below it is noise only.
    # (Selections, not sorts: after partitioning, the first half of the sample is what lies
    # at or below its median.)
    sample = ink[::3, ::3].ravel()
    half = sample.size // 2
    if half == 0:
        return np.clip(ink, 0.0, 1.0, out=ink), 0.0
    sample = np.partition(sample, half)
    med = float(sample[half])
    below = med - sample[:half]
    sigma = float(1.4826 * np.partition(below, below.size // 2)[below.size // 2]) if below.size else 0.0
    ink -= med
    return np.clip(ink, 0.0, 1.0, out=ink), sigma


@dataclass(frozen=True)
class _Print:
    """The template's print inside an area, at the crop's scale."""

    ink: np.ndarray  # (rows, cols) float32, 1 = black print
    rules: tuple[int, ...]  # rows of horizontal ruled lines (centre)
    rule_half: int  # half thickness (px) of a ruled line's band
    other: np.ndarray  # (rows, cols) bool: printed pixels that are not rules (labels, outlines), dilated
    near_print: np.ndarray  # (k,) int: flat indices of pixels within PRINT_REACH_MM of that print
    row_profile: np.ndarray  # (rows,) mean print ink per row (to align the print, `_align`)
    band: tuple[int, int]  # rows [r0, r1) where labels and outlines are printed (r1 = 0: none)
    band_profile: np.ndarray  # (cols,) mean print ink per column within those rows


@lru_cache(maxsize=32)
def _print_in(template_name: str, x0: int, y0: int, w: int, h: int, px_per_mm: float) -> _Print:
    ref = reference(template_name, px_per_mm)
    H, W = ref.lum.shape
    lum = np.ones((h, w), np.float32)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(W, x0 + w), min(H, y0 + h)
    if sx0 < sx1 and sy0 < sy1:
        lum[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = ref.lum[sy0:sy1, sx0:sx1]
    ink = 1.0 - lum
    printed = ink > 0.08
    # A ruled line: a row printed across most of the area (writing lines; a box's top and bottom).
    row_cover = printed.mean(axis=1)
    rows = np.flatnonzero(row_cover > 0.5)
    rules: list[int] = []
    for grp in np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1) if rows.size else []:
        weights = ink[grp].sum(axis=1)
        rules.append(round(float((grp * weights).sum() / weights.sum())))
    half = max(2, round(0.3 * px_per_mm))
    rule_mask = np.zeros_like(printed)
    for r in rules:
        rule_mask[max(0, r - half) : r + half + 1] = True
    other = printed & ~rule_mask
    # Short print inside a rule's band (a box's side crossing it) is "other" too.
    near_other = cv2.dilate(other.astype(np.uint8), np.ones((2 * half + 3, 1), np.uint8)) > 0
    other |= printed & rule_mask & near_other
    # Dilated by a little more than the alignment's error, so no print's edge is left behind.
    other = cv2.dilate(other.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    k = 2 * round(PRINT_REACH_MM * px_per_mm) + 1
    near_print = np.flatnonzero(cv2.dilate(other.astype(np.uint8), np.ones((k, k), np.uint8)))
    rows_other = np.flatnonzero(other.any(axis=1))
    r0, r1 = (int(rows_other.min()), int(rows_other.max()) + 1) if rows_other.size else (0, 0)
    row_profile, band_profile = ink.mean(axis=1), ink[r0:r1].mean(axis=0)
    for a in (ink, other, near_print, row_profile, band_profile):
        a.setflags(write=False)
    return _Print(ink, tuple(rules), half, other, near_print, row_profile, (r0, r1), band_profile)


def _best_shift(seen: np.ndarray, want: np.ndarray, search: int) -> tuple[int, float]:
    """Shift of 1-D profile ``want`` inside ``seen`` (longer by 2 * search): (shift, correlation)."""
    n = want.size
    if float(np.ptp(want)) < 1e-6 or seen.size < n + 2 * search:
        return 0, 0.0
    # Normalised correlation at every shift (OpenCV's: ~5x faster than the numpy windows).
    c = cv2.matchTemplate(
        np.ascontiguousarray(seen[None, : n + 2 * search], np.float32), np.ascontiguousarray(want[None], np.float32), cv2.TM_CCOEFF_NORMED
    )[0]
    c = np.nan_to_num(c, nan=0.0, posinf=0.0, neginf=0.0)
    k = int(np.argmax(c))
    return k - search, float(c[k])


def _align(ink: np.ndarray, pr: _Print, search: int) -> tuple[int, int, float]:
    """Shift (dx, dy) px of the print within ``ink`` (which has ``search`` px around it).

    Rows first (the ruled lines and the label fix the height), then columns over the rows the
    label and outlines are printed in. Projections are cheap and a pupil's strokes, spread
    along the line, barely move them. Returns (0, 0, score) when too little print is seen.
    """
    w = pr.ink.shape[1]
    rows_seen = cv2.reduce(ink[:, search : search + w], 1, cv2.REDUCE_AVG).ravel()
    dy, cy = _best_shift(rows_seen, pr.row_profile, search)
    if cy < 0.5:  # no print to be seen (a 1-bit scan dropped the grey rules): trust registration
        return 0, 0, cy
    r0, r1 = pr.band
    if r1 == 0:
        return 0, dy, cy
    cols_seen = cv2.reduce(ink[search + dy + r0 : search + dy + r1], 0, cv2.REDUCE_AVG).ravel()
    dx, cx = _best_shift(cols_seen, pr.band_profile, search)
    if cx < 0.5:
        dx = 0
    return dx, dy, min(cy, cx)


def _remove_rules(ink: np.ndarray, pr: _Print, px_per_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Divide each ruled line out of ``ink``, strip by strip; returns (ink, mask to fill)."""
    out = ink.copy()
    solid = np.zeros(ink.shape, bool)
    h, w = ink.shape
    strip = max(8, round(STRIP_MM * px_per_mm))
    n = max(1, w // strip)
    reach = pr.rule_half + 2  # rows either side of the rule's printed centre
    for r in pr.rules:
        r0, r1 = max(0, r - reach), min(h, r + reach + 1)
        if r1 - r0 < 3:
            continue
        band = ink[r0:r1]
        # The line's own profile across its width, per strip: most columns of a strip hold only
        # the line, and strokes only add ink, so a low percentile of the columns is the line
        # (a median took the bottoms of letters sitting on the line, or a crossbar, for it).
        # (Every other column: half the sorting, and as good an estimate from a strip's 60-odd.)
        cols = band[:, : n * strip].reshape(r1 - r0, n, strip)[:, :, ::2]
        q = (cols.shape[2] - 1) * RULE_PERCENTILE // 100
        prof = np.partition(cols, q, axis=2)[:, :, q]  # (rows, n)
        prof[:, prof.max(axis=0) < 0.04] = 0.0  # a scan that dropped the light rule there
        prof[prof <= 0.02] = 0.0
        line = np.repeat(prof, strip, axis=1)
        if line.shape[1] < w:  # the last strip takes the leftover columns
            line = np.concatenate([line, np.repeat(prof[:, -1:], w - line.shape[1], axis=1)], axis=1)
        stroke = np.clip(1.0 - (1.0 - band) / np.maximum(1.0 - line, 1e-3), 0.0, 1.0)
        is_solid = line >= SOLID_RULE
        stroke[is_solid] = 0.0
        out[r0:r1] = stroke
        solid[r0:r1] |= is_solid
    return out, solid


def _fill(ink: np.ndarray, mask: np.ndarray, px_per_mm: float) -> np.ndarray:
    """Fill ``mask`` from the pixels around it (normalised convolution): strokes crossing a
    thin masked band are bridged, a masked label on bare paper becomes paper. ``ink`` is
    changed in place (and returned); ``mask``: (rows, cols) bool."""
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    if w == 0:
        return ink
    k = max(3, round(0.9 * px_per_mm)) | 1
    t, b = max(0, y - k), min(mask.shape[0], y + h + k)
    left, right = max(0, x - k), min(mask.shape[1], x + w + k)
    roi = ink[t:b, left:right]
    m = mask[t:b, left:right]
    known = (~m).astype(np.float32)
    num = cv2.boxFilter(roi * known, -1, (k, k), normalize=False, borderType=cv2.BORDER_REPLICATE)[m]
    den = cv2.boxFilter(known, -1, (k, k), normalize=False, borderType=cv2.BORDER_REPLICATE)[m]
    roi[m] = np.where(den > 0.5, num / np.maximum(den, 1e-6), 0.0)
    return ink


def _components(ink: np.ndarray, lo: float, hi: float, pr: _Print, px_per_mm: float, rescue: float = 0.0):
    """Hysteresis components of ``ink`` between ``lo`` and ``hi``, sorted into strokes (at least
    `MIN_STROKE_MM`), small blobs and slivers along a ruled line: (labels, stats, big, small, remnants).
    ``rescue`` > 0: a sliver along a line with a pixel at least this dark is a stroke after all."""
    weak = (ink > lo).view(np.uint8)  # (a view: bools are bytes of 0 and 1)
    # (Block-based labelling: its statistics cost 0.2 ms an area, OpenCV's default's 0.6.)
    n, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(weak, 8, cv2.CV_32S, cv2.CCL_BBDT)
    # Hysteresis: a weak component counts only if it holds a clearly dark pixel.
    strong = np.zeros(n, bool)
    strong[labels[ink > hi]] = True
    strong[0] = False
    min_px = MIN_STROKE_MM * px_per_mm
    half = pr.rule_half
    idx = np.flatnonzero(strong)
    y, h = stats[idx, 1], stats[idx, 3]
    # A sliver along a ruled line is what is left of the line, not ink.
    on_rule = np.zeros(idx.size, bool)
    for r in pr.rules:
        on_rule |= (h <= 2 * half + 1) & (y >= r - half - 2) & (y + h <= r + half + 3)
    size = np.maximum(stats[idx, 2], h)
    if rescue and on_rule.any():
        # ...unless it is as dark as writing and beside it: a crossbar or a stroke lying on the
        # line (what the division leaves of a line is faint; a solid line was filled from
        # around it; a line left whole where the page's edge cut its strip lies apart).
        writing = idx[~on_rule & (size >= min_px)].tolist()
        slivers = np.flatnonzero(on_rule)
        if writing:
            for j in slivers[_near(stats, writing, idx[slivers].tolist(), DOT_REACH_MM * px_per_mm)]:
                i = idx[j]
                x0, y0, w0, h0 = stats[i, :4]
                win = labels[y0 : y0 + h0, x0 : x0 + w0] == i
                if float(ink[y0 : y0 + h0, x0 : x0 + w0][win].max()) >= rescue:
                    on_rule[j] = False
    big = idx[~on_rule & (size >= min_px)].tolist()
    small = idx[~on_rule & (size < min_px)].tolist()
    return labels, stats, big, small, int(np.count_nonzero(on_rule))


def _near(stats: np.ndarray, big: list[int], small: list[int], reach: float) -> np.ndarray:
    """Which ``small`` blobs lie within ``reach`` px of a ``big`` stroke's box (i-dots, full stops)."""
    bb = stats[big, :4].astype(np.float64)[None]  # (1, strokes, 4)
    sb = stats[small, :4].astype(np.float64)[:, None]  # (blobs, 1, 4)
    gx = np.maximum(0, np.maximum(bb[..., 0] - (sb[..., 0] + sb[..., 2]), sb[..., 0] - (bb[..., 0] + bb[..., 2])))
    gy = np.maximum(0, np.maximum(bb[..., 1] - (sb[..., 1] + sb[..., 3]), sb[..., 1] - (bb[..., 1] + bb[..., 3])))
    return np.hypot(gx, gy).min(axis=1) <= reach


def _strokes(ink: np.ndarray, sigma: float, pr: _Print, px_per_mm: float, bilevel: bool = False) -> tuple[np.ndarray, dict]:
    """Which pixels are writing: (rows, cols) bool, and the evidence. ``bilevel``: a 1-bit
    scan, whose ruled-line remnants are as black as writing (none is taken for a stroke)."""
    hi = max(STROKE_HIGH, NOISE_SIGMAS[0] * sigma)
    lo = max(STROKE_LOW, NOISE_SIGMAS[1] * sigma)
    labels, stats, big, small, remnants = _components(ink, lo, hi, pr, px_per_mm)
    n_strokes = len(big)
    half = pr.rule_half
    n = stats.shape[0]
    keep = np.zeros(n, bool)
    keep[big] = True
    specks = 0
    reach = DOT_REACH_MM * px_per_mm
    if big and small:
        near = _near(stats, big, small, reach)
        keep[np.asarray(small)[near]] = True
        specks = int(np.count_nonzero(~near))
    else:
        specks = len(small)

    def measure(sel: np.ndarray) -> tuple[float, float]:
        """(ink mm^2, extent mm) of the components selected."""
        if not sel.any():
            return 0.0, 0.0
        st = stats[sel]
        x0, y0 = st[:, 0].min(), st[:, 1].min()
        x1, y1 = (st[:, 0] + st[:, 2]).max(), (st[:, 1] + st[:, 3]).max()
        return float(st[:, 4].sum()) / (px_per_mm * px_per_mm), max(x1 - x0, y1 - y0) / px_per_mm

    ink_mm2, extent = measure(keep)
    written = ink_mm2 >= MIN_WRITING_INK_MM2 and extent >= MIN_WRITING_MM
    faint = False
    if not written and len(small) >= FAINT_MIN_BLOBS:
        # Many small blobs strung along the area: light pencil that a 1-bit scan broke into
        # dots. Dirt is a few specks, not a line of them.
        every = keep.copy()
        every[small] = True
        xs = stats[every, 0]
        if (xs.max() - xs.min()) / px_per_mm >= FAINT_SPREAD_MM:
            keep, faint, written, specks = every, True, True, 0
            ink_mm2, extent = measure(keep)
    relaxed = None
    if written and not faint:
        # Written: now the pupil's own pencil sets the level. Letters written with it are about
        # as dark as the strokes found; on a light, blurred scan some never reach STROKE_HIGH
        # and drop out of the picture (whole letters missing for OCR). The "written" decision
        # above is unchanged. Components at the relaxed thresholds contain those found above,
        # so the mask is theirs alone.
        sample = ink[::2, ::2]
        dark = sample[sample > hi]
        level = float(dark.mean()) if dark.size else hi
        hi2 = min(hi, max(RELAXED_HIGH, RELAXED_FRACTION * level, NOISE_SIGMAS[0] * sigma))
        lo2 = min(lo, max(RELAXED_LOW, NOISE_SIGMAS[1] * sigma))
        if hi2 < hi - 1e-6 or lo2 < lo - 1e-6:
            labels, stats, big, small, remnants = _components(ink, lo2, hi2, pr, px_per_mm, 0.0 if bilevel else ON_RULE_STROKE)
            keep = np.zeros(stats.shape[0], bool)
            keep[big] = True
            if big and small:
                keep[np.asarray(small)[_near(stats, big, small, reach)]] = True
            relaxed = [round(lo2, 3), round(hi2, 3)]
    if written and pr.near_print.size:
        # What lies wholly beside the label or an outline is print the alignment missed (a
        # phone photo's or a 150-dpi scan's print sits a pixel or two off): not writing.
        inside = np.bincount(labels.ravel()[pr.near_print], minlength=stats.shape[0])
        beside = keep & (inside >= stats[:, 4])
        if beside.any() and (keep & ~beside).any():
            keep &= ~beside
            big = [i for i in big if keep[i]]
    mask = np.zeros(labels.shape, bool)
    if keep.any():  # labels looked up only within the box of what is kept (most of an area is paper)
        st = stats[keep]
        x0, y0 = st[:, 0].min(), st[:, 1].min()
        x1, y1 = (st[:, 0] + st[:, 2]).max(), (st[:, 1] + st[:, 3]).max()
        mask[y0:y1, x0:x1] = keep[labels[y0:y1, x0:x1]]
    # Lines of writing.
    n_lines = 0
    if big:
        st = stats[big]
        # A stroke belongs to the line its top is on: a descender (g, p, y) crosses the ruled
        # line below it, its middle often below the line, its top never.
        line_of = (st[:, 1, None] > np.asarray(pr.rules, np.float64)[None] + half).sum(axis=1)
        per_line = np.bincount(line_of, weights=st[:, 4].astype(np.float64))
        n_lines = int(np.count_nonzero(per_line >= 0.1 * per_line.sum()))
    ev = {
        "written": bool(written),
        "faint": faint,
        "ink_mm2": round(ink_mm2, 2),
        "extent_mm": round(float(extent), 1),
        "strokes": n_strokes,
        "lines": n_lines,
        "specks": int(specks),
        "rule_remnants": int(remnants),
        "noise": round(sigma, 4),
        "thresholds": [round(lo, 3), round(hi, 3)],
    }
    if relaxed is not None:
        ev["relaxed_thresholds"] = relaxed
    return mask, ev


def _stretch(ink: np.ndarray, mask: np.ndarray, lo: float, px_per_mm: float) -> np.ndarray:
    """Strokes as dark-on-white: light pencil made dark, edges kept soft, paper pure white.

    Each stroke is stretched against the darkest ink near it (within ~1 mm), not only the
    writing's overall level, so a letter pressed lightly comes out as dark as the rest.
    """
    soft = cv2.dilate(mask.view(np.uint8), np.ones((3, 3), np.uint8)) > 0
    vals = ink[mask]
    sample = vals[::3]  # (a sample: as good, faster; a selection, not a sort)
    top = max(0.35, float(np.partition(sample, (sample.size - 1) * 9 // 10)[(sample.size - 1) * 9 // 10])) if sample.size else 1.0
    base = lo * 0.5
    k = max(3, round(LOCAL_PEAK_MM * px_per_mm) | 1)
    peak = cv2.dilate(np.where(mask, ink, np.float32(0.0)), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    # v = clip((ink - base) / max(min(peak, top) - base, floor), 0, 1), then 255 - 255 v + 0.5:
    # in place, step by step (the same arithmetic; each temporary was a pass over the crop).
    den = np.minimum(peak, top, out=peak)
    den -= base
    np.maximum(den, LOCAL_PEAK_FLOOR, out=den)
    v = ink - base
    v /= den
    np.clip(v, 0.0, 1.0, out=v)
    v[~soft] = 0.0
    np.multiply(v, 255.0, out=v)
    np.subtract(255.0, v, out=v)
    v += 0.5
    return v.astype(np.uint8)


# --------------------------------------------------------------------------- the step


def _warp_near(gray: np.ndarray, reg: Registration, x: float, y: float, w: float, h: float, px_per_mm: float) -> np.ndarray:
    """`register.warp` of a template region, reading only the part of the page around it.

    (`warp` smooths its whole source before shrinking; here the source is just the region.)
    """
    corners = np.array([[[x, y], [x + w, y], [x + w, y + h], [x, y + h]]], np.float64)
    pts = cv2.perspectiveTransform(corners, reg.to_image())[0]
    pad = 8
    H, W = gray.shape[:2]
    c0 = int(max(0, np.floor(pts[:, 0].min()) - pad))
    r0 = int(max(0, np.floor(pts[:, 1].min()) - pad))
    c1 = int(min(W, np.ceil(pts[:, 0].max()) + pad + 1))
    r1 = int(min(H, np.ceil(pts[:, 1].max()) + pad + 1))
    if c0 >= c1 or r0 >= r1:  # wholly off the page (a cut-off pass): paper
        return np.full((max(1, round(h * px_per_mm)), max(1, round(w * px_per_mm))), 255, np.uint8)
    shift = np.array([[1.0, 0, c0], [0, 1.0, r0], [0, 0, 1.0]])
    sub = replace(reg, homography=reg.homography @ shift)
    return warp(gray[r0:r1, c0:c1], sub, x, y, w, h, px_per_mm)


def _bridge(ink: np.ndarray, px_per_mm: float) -> np.ndarray:
    """A 1-bit scan's broken strokes joined: a closing across gaps of ~BILEVEL_BRIDGE_MM."""
    k = max(3, round(BILEVEL_BRIDGE_MM * px_per_mm) | 1)
    return cv2.morphologyEx(ink, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))


def _chained(dots: np.ndarray, strokes: np.ndarray, px_per_mm: float) -> np.ndarray:
    """``strokes`` and the ``dots`` strung to them by gaps of at most BILEVEL_CHAIN_MM (both
    (rows, cols) bool): a 1-bit scan's light pencil, beyond the reach of the bridge, that is
    part of the same words. Dust lies apart from the writing and stays out."""
    k = max(3, round(BILEVEL_CHAIN_MM * px_per_mm) | 1)
    near = cv2.dilate((dots | strokes).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    n, groups = cv2.connectedComponents(near, connectivity=8)
    hit = np.zeros(n, bool)
    hit[groups[strokes]] = True
    hit[0] = False
    return strokes | (dots & hit[groups])


def _writing(ink_box: np.ndarray, sigma: float, pr: _Print, p: float, widen: bool, bilevel: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
    """Print removed from the aligned area's ink map, then the strokes: (ink, strokes, evidence)."""
    ink, solid = _remove_rules(ink_box, pr, p)
    other = pr.other
    if widen:  # bridging spread the print a little wider
        other = cv2.dilate(other.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    ink = _fill(ink, solid | other, p)  # (in place: ``ink`` is _remove_rules's own copy)
    strokes, ev = _strokes(ink, sigma, pr, p, bilevel)
    return ink, strokes, ev


def clean_area(
    gray: np.ndarray,
    reg: Registration,
    template_name: str,
    box: Rect,
    px_per_mm: float = CROP_PX_PER_MM,
    bilevel: bool = False,
) -> WritingCrop:
    """Cut ``box`` (template mm) from the registered pass in ``gray`` and clean it.

    ``gray``: the page, (rows, cols) uint8. ``bilevel``: a 1-bit scan, where light pencil
    comes out as scattered dots (bridged back into strokes here). Returns a `WritingCrop`
    whose ``image`` is the cleaned, trimmed writing when something was written, else the
    area as scanned (paper flattened, print kept).
    """
    p = px_per_mm
    search = max(2, round(SEARCH_MM * p))
    bx0, by0 = round(box.x * p), round(box.y * p)
    bw, bh = max(1, round(box.w * p)), max(1, round(box.h * p))
    # Cut the area with room to search, on the reference's pixel grid (pixel i = [i, i+1)/p mm).
    x0, y0 = bx0 - search, by0 - search
    seen = _warp_near(gray, reg, x0 / p, y0 / p, (bw + 2 * search) / p, (bh + 2 * search) / p, p)
    sharp, sigma = _flatten(seen, p)
    ink_all = _bridge(sharp, p) if bilevel else sharp
    pr = _print_in(template_name, bx0, by0, bw, bh, p)
    dx, dy, score = _align(ink_all, pr, search)
    ox, oy = search + dx, search + dy
    ink, strokes, ev = _writing(ink_all[oy : oy + bh, ox : ox + bw], sigma, pr, p, bilevel, bilevel)
    if bilevel:
        # Strokes were found on the bridged copy; the picture shows the scan's own pixels
        # (as legible as the scan is). Pencil so light that only sparse dots are left is
        # counted on those dots themselves.
        own = _writing(sharp[oy : oy + bh, ox : ox + bw], sigma, pr, p, False, True)
        if not ev["written"] and own[2]["written"]:
            ink, strokes, ev = own
        else:
            ink = own[0]
        if ev["written"]:
            strokes = _chained(ink > ev["thresholds"][0], strokes, p)
    ev["print_shift_mm"] = [round(dx / p, 2), round(dy / p, 2)]
    ev["print_match"] = round(score, 3)
    at_x, at_y = (bx0 + dx) / p, (by0 + dy) / p
    if not ev["written"]:
        ev["empty_because"] = "nothing written" if not ev["strokes"] and not ev["specks"] else "only specks or a stray mark"
        area = 1.0 - sharp[oy : oy + bh, ox : ox + bw]
        img = (np.clip(area, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        # 32 grey levels, paper still 255: the scanner's noise in the low bits made the PNG
        # 10x larger and 2.7x slower to write (an empty area is only looked at, never read).
        img = 255 - ((255 - img) >> 3 << 3)
        return WritingCrop(img, False, (at_x, at_y, bw / p, bh / p), p, ev)
    x, y, w, h = cv2.boundingRect(strokes.view(np.uint8))  # the strokes' box
    m = round(MARGIN_MM * p)
    t0, t1 = max(0, y - m), min(bh, y + h + m)
    l0, l1 = max(0, x - m), min(bw, x + w + m)
    img = _stretch(ink[t0:t1, l0:l1], strokes[t0:t1, l0:l1], ev["thresholds"][0], p)
    return WritingCrop(img, True, (at_x + l0 / p, at_y + t0 / p, (l1 - l0) / p, (t1 - t0) / p), p, ev)


__all__ = ["CROP_PX_PER_MM", "OCR_PX_PER_MM", "WritingCrop", "clean_area", "deslant", "flatten_paper", "slant_of"]
