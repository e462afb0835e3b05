"""Registration: find the passes on a scanned page and map each into its template's frame.

Markers are found with OpenCV's ArUco detector on a reduced copy of the page (fast), and
again at full resolution only when the reduced pass leaves a pass incomplete. Markers are
grouped into passes by their IDs (``4 * group + corner``), so any orientation and several
passes per page need no extra logic; the same group seen twice on a page (cut slips from
different sheets) is split by geometry. Each pass gets a homography from image pixels to
template millimetres, fitted robustly on all corners of its markers; its residual (mm) is
kept as a quality figure.

Arrays are (rows, cols) uint8 grayscale; points are (x, y) = (col, row) float32.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property, lru_cache

import cv2
import numpy as np

from exitscan.template import ARUCO_DICTIONARY, MARKER_GROUPS, Template, marker_ids, marker_role

#: Smallest long side of the reduced copy markers are first looked for in (it is the page
#: reduced by a whole factor: 850-1700 px). A4 at >= 73 dpi: a 4-up pass's marker (7 mm) is
#: >= 20 px (SMALL_MARKER_PX), enough for 4x4 bits, and the page takes ~4 ms.
DETECT_MIN_LONG_SIDE = 850
#: Markers smaller than this (px a side) on the reduced copy are near its limit: then the
#: page is searched at full resolution too, lest a whole pass go unseen.
SMALL_MARKER_PX = 20
#: A marker fit worse than this (mm, RMS over corners) is left out of its pass's homography.
MAX_CORNER_ERROR_MM = 1.5


@dataclass(frozen=True)
class Marker:
    id: int
    corners: np.ndarray  # (4, 2) float32, image px, OpenCV order (TL, TR, BR, BL of the marker)

    @property
    def group(self) -> int:
        return marker_role(self.id)[0]

    @property
    def corner(self) -> int:
        return marker_role(self.id)[1]

    @property
    def centre(self) -> np.ndarray:
        return self.corners.mean(axis=0)

    @cached_property
    def side(self) -> float:
        c = self.corners
        d = c - c[[1, 2, 3, 0]]  # each edge (np.roll's overhead was most of this, 16 markers a page)
        return float(np.hypot(d[:, 0], d[:, 1]).mean())


@dataclass(frozen=True)
class Registration:
    """One pass found on a page."""

    group: int
    markers: tuple[Marker, ...]  # those used, 3 or 4
    homography: np.ndarray  # (3, 3) float64: image px -> template mm
    residual_mm: float  # RMS of marker corners after the fit
    px_per_mm: float  # scan resolution at this pass

    @property
    def corners_found(self) -> int:
        return len(self.markers)

    @property
    def missing_corners(self) -> tuple[int, ...]:
        have = {m.corner for m in self.markers}
        return tuple(k for k in range(4) if k not in have)

    def to_image(self) -> np.ndarray:
        """(3, 3) homography from template mm to image px (OpenCV's pixel-centre coordinates)."""
        return np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1.0]]) @ np.linalg.inv(self.homography)


@dataclass(frozen=True)
class Incomplete:
    """Markers of a pass that are too few to register it (fewer than 3)."""

    group: int
    markers: tuple[Marker, ...]


@lru_cache(maxsize=1)
def _dictionary():
    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, ARUCO_DICTIONARY))


#: Smallest marker side (px) looked for on the reduced copy. Smaller ones are below
#: SMALL_MARKER_PX anyway, so the page is searched at full resolution for them; leaving them
#: out here drops the QR code's finder squares (~13 px) before they cost a bit reading each.
MIN_REDUCED_MARKER_PX = 15


#: When the scan's resolution is known, markers smaller than this fraction of the template's
#: (8 mm) are not looked for on the reduced copy either: the smallest any sheet prints is a 4-up
#: pass on Letter, fit to the printable area (0.94 x 0.965: 7.3 mm), and a copy reduced a little
#: is allowed for. At 200 dpi the QR code's finder squares (4.8 mm, 19 px on the reduced copy)
#: passed the 15-px floor and each cost a bit reading: 8-13 ms a page instead of ~4. Only speed
#: depends on it: a page where it hides every marker is searched again at full resolution.
MIN_MARKER_FRACTION = 0.7
#: ...and the hint is trusted only while every marker found is this far above that floor.
HINT_MARGIN = 1.25


#: Adaptive-threshold windows on the reduced copy, tried in turn: 7 px suits the usual
#: 20-px markers of a 4-up copier page (3.9 ms a page); 13 px the big ones of a 1-up sheet or
#: a close photo, looked for only when the first leaves a pass incomplete (both at once: 6 ms).
REDUCED_WINDOWS = (7, 13)


@lru_cache(maxsize=8)
def _detector(reduced: bool, min_perimeter_rate: float = 0.05, window: int = 7):
    p = cv2.aruco.DetectorParameters()
    if reduced:
        # On the reduced copy a marker is 15-50 px a side (a phone photo of four passes to a
        # 1-up sheet): one threshold window at a time, and contours outside that perimeter
        # range (text, the page's edge) are dropped early. 15 ms -> 4 ms a page.
        p.adaptiveThreshWinSizeMin = window
        p.adaptiveThreshWinSizeMax = window
        p.adaptiveThreshWinSizeStep = 6
        p.minMarkerPerimeterRate = min_perimeter_rate
        p.maxMarkerPerimeterRate = 0.8
    p.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_NONE
    return cv2.aruco.ArucoDetector(_dictionary(), p)


def _detect(gray: np.ndarray, reduced: bool, window: int = REDUCED_WINDOWS[0], min_px: float = MIN_REDUCED_MARKER_PX) -> list[Marker]:
    # OpenCV's perimeter rate is relative to the image's long side.
    rate = round(4 * min_px / max(gray.shape[:2]), 3) if reduced else 0.05
    try:
        corners, ids, _ = _detector(reduced, rate, window if reduced else 0).detectMarkers(gray)
    except cv2.error:
        return []
    if ids is None:
        return []
    out = []
    for c, i in zip(corners, ids.ravel()):
        if int(i) < 4 * MARKER_GROUPS:
            out.append(Marker(int(i), c.reshape(4, 2).astype(np.float32)))
    return out


def _refine(gray: np.ndarray, markers: list[Marker], win: int) -> list[Marker]:
    if not markers:
        return markers
    pts = np.concatenate([m.corners for m in markers]).reshape(-1, 1, 2).astype(np.float32)
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.05)
    try:
        cv2.cornerSubPix(gray, pts, (win, win), (-1, -1), crit)
    except cv2.error:
        return markers
    pts = pts.reshape(-1, 4, 2)
    return [Marker(m.id, p) for m, p in zip(markers, pts)]


def find_markers(gray: np.ndarray, px_per_mm: float | None = None) -> list[Marker]:
    """All exitscan markers on a page, corners in ``gray``'s pixels.

    Looks on a reduced copy first; falls back to full resolution when no marker is found
    or a pass is incomplete, and merges (an ID found twice at one place counts once).
    ``px_per_mm``: the scan's resolution when the file says it (not a photo's), so that
    squares too small to be markers are passed over on the reduced copy.
    """
    h, w = gray.shape[:2]
    # An integer reduction: OpenCV averages k x k blocks ~40x faster than a fractional INTER_AREA
    # (0.1 ms vs 4.4 ms for a 150-dpi A4 page). Rounded down, so that 4-up markers stay above
    # SMALL_MARKER_PX (a 200-dpi page reduced by 3 left them at 18 px, and every page was then
    # searched again at full resolution: 125 ms of CPU a page instead of ~70).
    k = max(1, max(h, w) // DETECT_MIN_LONG_SIDE)
    f = 1.0 / k
    markers: list[Marker] = []
    if k > 1:
        # (Cut to whole blocks first: an odd width, as a 200-dpi A4 page has, sent OpenCV down
        # its fractional path, 10 ms instead of 0.3. The last row or column of blocks is whole.)
        small = cv2.resize(gray[: h // k * k, : w // k * k], (w // k, h // k), interpolation=cv2.INTER_AREA)
        min_px = float(MIN_REDUCED_MARKER_PX)
        if px_per_mm:
            from exitscan.template import load_template  # geometry is shared by every template

            min_px = max(min_px, MIN_MARKER_FRACTION * load_template("classic").marker_size * px_per_mm / k)
        found = _detect(small, reduced=True, min_px=min_px)
        if min_px > MIN_REDUCED_MARKER_PX and found and min(m.side for m in found) < HINT_MARGIN * min_px:
            # Markers near the floor: the hint may have been too high for some (a photo put in a
            # PDF, whose far side is smaller): look again without it, so none is missed.
            min_px = float(MIN_REDUCED_MARKER_PX)
            found = _merge(found, _detect(small, reduced=True, min_px=min_px))
        if not found or _incomplete(found):
            for window in REDUCED_WINDOWS[1:]:
                found = _merge(found, _detect(small, reduced=True, window=window, min_px=min_px))
        # Pixel centres: small pixel i covers full pixels [k*i, k*i + k).
        markers = [Marker(m.id, m.corners * k + (k - 1) / 2) for m in found]
        markers = _refine(gray, markers, max(2, round(1.5 / f)))
    groups: dict[int, set[int]] = {}
    for m in markers:
        groups.setdefault(m.group, set()).add(m.corner)
    small_markers = k > 1 and markers and np.median([m.side for m in markers]) * f < SMALL_MARKER_PX
    if not markers or small_markers or any(len(s) < 3 for s in groups.values()):
        # Nothing found, a pass incomplete, or markers so small on the reduced copy (a photo
        # of four passes) that a whole pass may have been missed: look at full resolution.
        markers = _merge(markers, _detect(gray, reduced=False))
        if not markers or _incomplete(markers):
            # Very crisp, aliased images (clean renders) can defeat the bit reading; a
            # little blur, as any real scanner adds, brings them back.
            markers = _merge(markers, _detect(cv2.GaussianBlur(gray, (0, 0), 0.8), reduced=False))
        if _short(markers):
            markers = _merge(markers, _rescue(gray, markers))
        return markers
    if any(len(s) == 3 for s in groups.values()):
        markers = _find_missing(gray, markers, groups)
    return markers


#: A square ArUco found but could not read (a blurred or shaken photo smears a marker's bits)
#: is named by comparing it, whole, with every marker the passes use, in each of its four
#: turns: accepted when it matches one this well (normalised correlation of the straightened
#: square; blurred markers that ArUco rejected matched their own at 0.54-0.79)...
RESCUE_MIN_SCORE = 0.5
#: ...clearly better than any other marker (the next best, another ID, matched 0.1-0.35 lower)...
RESCUE_MARGIN = 0.1
#: ...its size near the other markers' (ArUco's squares of the QR code's finders are ~0.6x)...
RESCUE_SIZE = (0.75, 1.35)
#: ...and only where it makes a pass registrable: its pass then has at least 3 markers, all of
#: which must still fit the template together (`_fit`), so a wrong name cannot make a pass.
_RESCUE_CELL_PX = 8


def _short(markers: list[Marker]) -> bool:
    groups: dict[int, set[int]] = {}
    for m in markers:
        groups.setdefault(m.group, set()).add(m.corner)
    return not groups or any(len(s) < 3 for s in groups.values())


@lru_cache(maxsize=1)
def _rescue_patterns() -> np.ndarray:
    """Every marker the passes use, as printed, 6 x 6 cells (border included) of
    `_RESCUE_CELL_PX`: (ids, pixels) float32, each row zero-mean and unit-norm."""
    n = 6 * _RESCUE_CELL_PX
    rows = [cv2.aruco.generateImageMarker(_dictionary(), i, n).astype(np.float32).ravel() for i in range(4 * MARKER_GROUPS)]
    p = np.stack(rows)
    p -= p.mean(axis=1, keepdims=True)
    return p / np.linalg.norm(p, axis=1, keepdims=True)


def _name_square(gray: np.ndarray, quad: np.ndarray) -> tuple[int, np.ndarray, float, float] | None:
    """(id, corners in the marker's own order, score, margin) of the marker a square looks
    most like, or None. ``quad``: (4, 2) corners in order round the square."""
    n = 6 * _RESCUE_CELL_PX
    dst = np.array([[0, 0], [n, 0], [n, n], [0, n]], np.float32) - 0.5
    pats = _rescue_patterns()
    best: tuple[float, int, int] | None = None
    scores = []
    for turn in range(4):
        q = np.roll(quad, -turn, axis=0).astype(np.float32)
        M = cv2.getPerspectiveTransform(q, dst)
        v = cv2.warpPerspective(gray, M, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32).ravel()
        v -= v.mean()
        norm = float(np.linalg.norm(v))
        if norm < 1e-3:
            return None
        sc = pats @ (v / norm)
        scores.append(sc)
        i = int(np.argmax(sc))
        if best is None or sc[i] > best[0]:
            best = (float(sc[i]), i, turn)
    assert best is not None
    score, marker_id, turn = best
    others = np.max(np.stack(scores), axis=0)
    others[marker_id] = -1.0
    margin = score - float(others.max())
    return marker_id, np.roll(quad, -turn, axis=0).astype(np.float32), score, margin


def _rescue(gray: np.ndarray, markers: list[Marker]) -> list[Marker]:
    """Markers among the squares ArUco rejected, named by their whole pattern (see
    `RESCUE_MIN_SCORE`), where they complete a pass to three or four markers."""
    sides = [m.side for m in markers]
    lo = RESCUE_SIZE[0] * float(np.median(sides)) if sides else 12.0
    hi = RESCUE_SIZE[1] * float(np.median(sides)) if sides else float(max(gray.shape))
    p = cv2.aruco.DetectorParameters()
    p.minMarkerPerimeterRate = max(0.005, round(4 * lo / max(gray.shape[:2]), 4))
    try:
        _, _, rejected = cv2.aruco.ArucoDetector(_dictionary(), p).detectMarkers(gray)
    except cv2.error:
        return []
    named: list[Marker] = []
    for r in rejected:
        quad = r.reshape(4, 2).astype(np.float32)
        side = float(np.hypot(*(quad - np.roll(quad, -1, axis=0)).T).mean())
        if not lo <= side <= hi:
            continue
        got = _name_square(gray, quad)
        if got is None:
            continue
        marker_id, corners, score, margin = got
        if score >= RESCUE_MIN_SCORE and margin >= RESCUE_MARGIN:
            named = _merge(named, [Marker(marker_id, corners)])
    out: list[Marker] = []
    have = _merge(list(markers), [])
    for m in named:
        if any(o.id == m.id for o in have):
            continue  # found already (there, or elsewhere: an ID twice needs its own evidence)
        corners = {o.corner for o in have if o.group == m.group} | {o.corner for o in named if o.group == m.group}
        if len(corners) >= 3:
            out.append(m)
    return out


def _incomplete(markers: list[Marker]) -> bool:
    groups: dict[int, set[int]] = {}
    for m in markers:
        groups.setdefault(m.group, set()).add(m.corner)
    return any(len(s) < 4 for s in groups.values())


def _find_missing(gray: np.ndarray, markers: list[Marker], groups: dict[int, set[int]]) -> list[Marker]:
    """Look for a pass's fourth marker at full resolution, only where the other three say it is."""
    from exitscan.template import load_template  # geometry is shared by every template

    t = load_template("classic")
    ref = t.marker_corners_mm()
    out = list(markers)
    for g, corners in groups.items():
        if len(corners) != 3:
            continue
        ms = [m for m in markers if m.group == g]
        fit = _fit(t, ms)
        if fit is None:
            continue
        inv = np.linalg.inv(fit[0])
        for k in set(range(4)) - corners:
            quad = cv2.perspectiveTransform(np.array([ref[k]], dtype=np.float64), inv)[0]
            side = float(np.linalg.norm(quad[0] - quad[2]))
            x0, y0 = np.floor(quad.min(axis=0) - side).astype(int)
            x1, y1 = np.ceil(quad.max(axis=0) + side).astype(int)
            x0, y0 = max(0, x0), max(0, y0)
            x1, y1 = min(gray.shape[1], x1), min(gray.shape[0], y1)
            if x1 - x0 < 8 or y1 - y0 < 8:
                continue  # off the page: cut off by the scanner
            found = _detect(np.ascontiguousarray(gray[y0:y1, x0:x1]), reduced=False)
            off = np.array([x0, y0], np.float32)
            out = _merge(out, [Marker(m.id, m.corners + off) for m in found if m.group == g])
    return out


def _merge(a: list[Marker], b: list[Marker]) -> list[Marker]:
    out = list(a)
    for m in b:
        if not any(o.id == m.id and np.linalg.norm(o.centre - m.centre) < o.side for o in out):
            out.append(m)
    return out


def _fit(template: Template, markers: list[Marker]) -> tuple[np.ndarray, float, list[Marker]] | None:
    """Homography image px -> mm from all marker corners; drops markers that don't fit."""
    ref = template.marker_corners_mm()
    ms = list(markers)
    while len(ms) >= 3:
        # +0.5: OpenCV's pixel coordinates name pixel centres; the fit maps pixel *areas*.
        src = np.concatenate([m.corners for m in ms]).astype(np.float64) + 0.5
        dst = np.array([p for m in ms for p in ref[m.corner]], dtype=np.float64)
        H, _ = cv2.findHomography(src, dst, 0)
        if H is None:
            return None
        proj = cv2.perspectiveTransform(src.reshape(-1, 1, 2), H).reshape(-1, 2)
        err = np.linalg.norm(proj - dst, axis=1).reshape(len(ms), 4)
        per_marker = np.sqrt((err**2).mean(axis=1))
        worst = int(np.argmax(per_marker))
        if per_marker[worst] <= MAX_CORNER_ERROR_MM:
            return H, float(np.sqrt((err**2).mean())), ms
        ms.pop(worst)
    return None


def _split_group(template: Template, markers: list[Marker]) -> list[list[Marker]]:
    """Split one group's markers into passes when an ID occurs more than once on the page.

    Each marker predicts where its pass's other markers are (from its own position, size
    and rotation); markers are joined to the nearest prediction.
    """
    by_corner: dict[int, list[Marker]] = {}
    for m in markers:
        by_corner.setdefault(m.corner, []).append(m)
    if all(len(v) == 1 for v in by_corner.values()):
        return [markers]
    ref = template.marker_corners_mm()
    centres_mm = {k: np.mean(ref[k], axis=0) for k in ref}
    remaining = sorted(markers, key=lambda m: (-len(by_corner[m.corner]), m.id))
    passes: list[list[Marker]] = []
    used: set[int] = set()
    for seed in remaining:
        if id(seed) in used:
            continue
        A, _ = cv2.estimateAffinePartial2D(
            np.array(ref[seed.corner], dtype=np.float32), seed.corners
        )
        if A is None:
            continue
        group = [seed]
        used.add(id(seed))
        tol = 0.15 * np.linalg.norm(np.array(template.size)) * seed.side / template.marker_size
        for k in range(4):
            if k == seed.corner:
                continue
            pred = A @ np.array([*centres_mm[k], 1.0])
            cands = [m for m in by_corner.get(k, []) if id(m) not in used]
            if not cands:
                continue
            best = min(cands, key=lambda m: float(np.linalg.norm(m.centre - pred)))
            if np.linalg.norm(best.centre - pred) < tol:
                group.append(best)
                used.add(id(best))
        passes.append(group)
    return passes


def register_page(
    gray: np.ndarray, template_for_group, markers: list[Marker] | None = None
) -> tuple[list[Registration], list[Incomplete]]:
    """Group a page's markers into passes and fit each pass's homography.

    ``template_for_group`` gives the `Template` whose marker geometry applies (all shipped
    templates share it; the QR code, read after registration, says which template a pass
    really is). Returns the registered passes in reading order (top to bottom, left to
    right on the page as scanned) and the groups with too few markers to register.
    """
    if markers is None:
        markers = find_markers(gray)
    groups: dict[int, list[Marker]] = {}
    for m in markers:
        groups.setdefault(m.group, []).append(m)
    regs: list[Registration] = []
    incomplete: list[Incomplete] = []
    for g, ms in sorted(groups.items()):
        template = template_for_group(g)
        for part in _split_group(template, ms):
            fit = _fit(template, part) if len({m.corner for m in part}) >= 3 else None
            if fit is None:
                incomplete.append(Incomplete(g, tuple(part)))
                continue
            H, residual, used = fit
            px_per_mm = float(np.mean([m.side for m in used]) / template.marker_size)
            regs.append(Registration(g, tuple(used), H, residual, px_per_mm))
    regs.sort(key=lambda r: _reading_key(r))
    return regs, incomplete


#: Locating a marker's centre by its whole printed pattern (`marker_centres`): the crop's
#: pixels a millimetre, the white ring (mm) kept around the marker in the pattern, and how far
#: (mm) from where the registration puts it the marker is looked for.
_CENTRE_PX_PER_MM = 6.0
_CENTRE_RING_MM = 1.0
_CENTRE_REACH_MM = 1.5
#: Normalised correlation a marker's pattern must reach for its centre to be used (found
#: markers score 0.95-0.99 on phone photos of 3.5 px/mm).
MIN_CENTRE_MATCH = 0.7


@lru_cache(maxsize=128)
def _marker_pattern(marker_id: int, size_mm: float) -> np.ndarray:
    """The marker as printed, with a white ring, at `_CENTRE_PX_PER_MM`, a little blurred:
    (rows, cols) float32 in [0, 1]."""
    bits = cv2.aruco.generateImageMarker(_dictionary(), marker_id, 6).astype(np.float32) / 255
    n = round((size_mm + 2 * _CENTRE_RING_MM) * _CENTRE_PX_PER_MM)
    m = round(size_mm * _CENTRE_PX_PER_MM)
    pattern = np.ones((n, n), np.float32)
    o = (n - m) // 2
    pattern[o : o + m, o : o + m] = cv2.resize(bits, (m, m), interpolation=cv2.INTER_NEAREST)
    return cv2.GaussianBlur(pattern, (0, 0), 0.3 * _CENTRE_PX_PER_MM)


def _peak(scores: np.ndarray) -> tuple[float, float, float]:
    """(col, row, value) of a correlation map's maximum, to a fraction of a pixel."""
    r, c = np.unravel_index(int(np.argmax(scores)), scores.shape)
    best = float(scores[r, c])

    def vertex(a: float, b: float) -> float:  # the peak of a parabola through a, best, b
        d = a - 2 * best + b
        return 0.5 * (a - b) / d if d < 0 else 0.0

    dr = vertex(scores[r - 1, c], scores[r + 1, c]) if 0 < r < scores.shape[0] - 1 else 0.0
    dc = vertex(scores[r, c - 1], scores[r, c + 1]) if 0 < c < scores.shape[1] - 1 else 0.0
    return c + dc, r + dr, best


def _match_marker(
    gray: np.ndarray, reg: Registration, template: Template, marker_id: int, corner: int
) -> tuple[np.ndarray, tuple[float, float], float]:
    """Where marker ``marker_id`` (at ``corner``) is centred in ``gray`` (OpenCV's pixel
    centres), found within `_CENTRE_REACH_MM` of where ``reg`` puts it; its centre in template
    mm; the match's normalised correlation."""
    x, y = template.marker_corners_mm()[corner][0]
    size = template.marker_size
    margin = _CENTRE_RING_MM + _CENTRE_REACH_MM
    pattern = _marker_pattern(marker_id, size)
    crop = warp(gray, reg, x - margin, y - margin, size + 2 * margin, size + 2 * margin, _CENTRE_PX_PER_MM)
    c, r, score = _peak(cv2.matchTemplate(crop.astype(np.float32), pattern, cv2.TM_CCOEFF_NORMED))
    # Crop pixel u spans [u, u + 1) / px_per_mm from the crop's corner (see `warp`).
    at = np.array([x - margin, y - margin]) + (np.array([c, r]) + (pattern.shape[0] - 1) / 2 + 0.5) / _CENTRE_PX_PER_MM
    px = cv2.perspectiveTransform(at.reshape(1, 1, 2), np.linalg.inv(reg.homography))[0, 0] - 0.5
    return px, (x + size / 2, y + size / 2), score


def marker_centres(
    gray: np.ndarray, reg: Registration, template: Template
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Each of ``reg``'s markers' centres, located by matching its whole printed pattern.

    ArUco's corners of a small, blurred, sharpened marker (a phone photo at 3-5 px/mm) sit
    0.1-0.4 mm inside the true ones, about evenly: a marker's corners are a poor guide to
    its own perspective, though their mean stays close. Matching the known pattern (all 36
    cells) in a crop rectified by ``reg`` puts the centre within ~0.03 mm. Returns the
    centres in the image ((N, 2) float64, OpenCV's pixel centres), in template mm, and each
    match's normalised correlation.
    """
    found = [_match_marker(gray, reg, template, m.id, m.corner) for m in reg.markers]
    px, mm, scores = zip(*found)
    return np.array(px, np.float64), np.array(mm, np.float64), tuple(scores)


#: Refitting a pass with more known points than its markers (`refit`): the marker centres
#: count this many times each in the fit, as they are located ~3x more precisely than the
#: code's patterns (0.02-0.03 mm vs 0.03-0.1; a weight of 1/variance).
_CENTRE_WEIGHT = 9
#: The largest distance (mm) at which the joint fit may leave any of the new points for
#: them to be taken as agreeing with the markers: a pattern matched in the wrong place is off
#: by a module (0.7 mm), of which a fit may bend away up to ~2/3; found ones are left within
#: 0.12 mm (1,550 passes of phone photos with a marker taken away: median 0.05).
MAX_REFIT_POINT_MM = 0.2
#: ...and the most a refit may move any point of the pass from where the old fit put it: a
#: three-marker fit on a phone photo can be 5 mm off at its far corner (3 at the faces);
#: more than this is no correction but a different pass.
MAX_REFIT_MOVE_MM = 10.0
#: A marker ArUco missed (a corner in shadow) is often in the photo all the same: it is
#: looked for by its pattern where the refitted homography puts it, and used when it matches
#: this well (found ones: 0.97-0.99; a cut-off corner: < 0.4) this close to where it should be.
MIN_MISSED_MARKER_MATCH = 0.85
MAX_MISSED_MARKER_SHIFT_MM = 1.0


def _weighted_fit(centres: np.ndarray, centres_mm: np.ndarray, points: np.ndarray, points_mm: np.ndarray) -> np.ndarray | None:
    src = np.vstack([np.repeat(centres, _CENTRE_WEIGHT, axis=0), points])
    dst = np.vstack([np.repeat(centres_mm, _CENTRE_WEIGHT, axis=0), points_mm])
    H, _ = cv2.findHomography(src, dst, 0)
    return None if H is None else H / H[2, 2]


def _distances(H: np.ndarray, px: np.ndarray, mm: np.ndarray) -> np.ndarray:
    return np.linalg.norm(cv2.perspectiveTransform(px.reshape(-1, 1, 2), H).reshape(-1, 2) - mm, axis=1)


def refit(
    gray: np.ndarray,
    reg: Registration,
    template: Template,
    points_px: np.ndarray,
    points_mm: np.ndarray,
    label: str = "points",
) -> tuple[Registration, dict]:
    """Fit ``reg``'s homography again from its markers' centres plus more known points.

    For a pass registered from three markers: their corners leave the homography's
    perspective loosely fixed (it comes from each marker's own small shape), and on a phone
    photo the fit can be 1-3 mm off at the faces, far from the markers, while its residual
    stays low. Here each marker's centre is located by its whole pattern (`marker_centres`)
    and the fit takes them (weighted) with ``points_px`` ((N, 2) where more points of the
    pass are in ``gray``, OpenCV's pixel centres) at ``points_mm`` ((N, 2) where the
    template prints them). The new fit is kept only when every marker matched well, the fit
    leaves every point within `MAX_REFIT_POINT_MM`, and it moves the pass by no more than
    `MAX_REFIT_MOVE_MM`; otherwise ``reg`` is returned unchanged. A marker ArUco missed is
    then looked for where the new fit puts it, and joins the fit when it is clearly there.
    The evidence says what was done and why, with the residuals before and after (mm).
    """
    extra = np.asarray(points_px, np.float64).reshape(-1, 2) + 0.5  # pixel areas (see `_fit`)
    extra_mm = np.asarray(points_mm, np.float64).reshape(-1, 2)
    evidence: dict = {
        "points": f"{len(reg.markers)} marker centres + {len(extra)} {label}",
        "before_mm": round(reg.residual_mm, 3),
        "used": False,
    }
    centres, centres_mm, match = marker_centres(gray, reg, template)
    evidence["marker_match"] = [round(v, 2) for v in match]
    if min(match) < MIN_CENTRE_MATCH:
        evidence["why"] = f"a marker is not clear enough to place exactly (match {min(match):.2f})"
        return reg, evidence
    centres += 0.5
    # How far the old fit puts the new points from where they are printed.
    evidence[f"{label}_before_mm"] = round(float(_distances(reg.homography, extra, extra_mm).max()), 3)
    H = _weighted_fit(centres, centres_mm, extra, extra_mm)
    if H is None:
        evidence["why"] = "no fit"
        return reg, evidence
    ids = marker_ids(reg.group)
    for k in reg.missing_corners:
        at, at_mm, score = _match_marker(gray, replace(reg, homography=H), template, ids[k], k)
        shift = float(_distances(H, at + 0.5, np.array([at_mm]))[0])
        evidence.setdefault("missed_markers", []).append(
            {"corner": k, "match": round(score, 2), "shift_mm": round(shift, 2)}
        )
        if score >= MIN_MISSED_MARKER_MATCH and shift <= MAX_MISSED_MARKER_SHIFT_MM:
            centres = np.vstack([centres, at + 0.5])
            centres_mm = np.vstack([centres_mm, at_mm])
    if len(centres) > len(reg.markers):
        evidence["points"] = f"{len(centres)} marker centres + {len(extra)} {label}"
        H = _weighted_fit(centres, centres_mm, extra, extra_mm)
        if H is None:
            evidence["why"] = "no fit"
            return reg, evidence
    worst = float(_distances(H, extra, extra_mm).max())
    worst_centre = float(_distances(H, centres, centres_mm).max())
    ref = template.marker_corners_mm()
    corners = np.concatenate([m.corners for m in reg.markers]).astype(np.float64) + 0.5
    corners_mm = np.array([p for m in reg.markers for p in ref[m.corner]], dtype=np.float64)
    residual = float(np.sqrt((_distances(H, corners, corners_mm) ** 2).mean()))
    # How far the new fit moves the pass: the template's corners and centre, old vs new.
    w, h = template.size
    probe = np.array([[0, 0], [w, 0], [w, h], [0, h], [w / 2, h / 2]], np.float64)
    old_px = cv2.perspectiveTransform(probe.reshape(-1, 1, 2), np.linalg.inv(reg.homography))
    moved = float(_distances(H, old_px, probe).max())
    evidence |= {
        f"{label}_after_mm": round(worst, 3),
        "centres_after_mm": round(worst_centre, 3),
        "after_mm": round(residual, 3),
        "moved_mm": round(moved, 2),
    }
    if max(worst, worst_centre) > MAX_REFIT_POINT_MM:
        evidence["why"] = f"the {label} disagree with the markers by {max(worst, worst_centre):.2f} mm"
        return reg, evidence
    if moved > MAX_REFIT_MOVE_MM:
        evidence["why"] = f"the {label} would move the pass by {moved:.1f} mm"
        return reg, evidence
    evidence["used"] = True
    return replace(reg, homography=H, residual_mm=residual), evidence


def _reading_key(r: Registration) -> tuple[float, float]:
    c = np.mean([m.centre for m in r.markers], axis=0)
    return (round(float(c[1]) / 200.0), float(c[0]))


def warp(
    gray: np.ndarray,
    reg: Registration,
    x: float,
    y: float,
    w: float,
    h: float,
    px_per_mm: float,
    border: int = 255,
) -> np.ndarray:
    """The template region (x, y, w, h) mm, resampled at ``px_per_mm``: (rows, cols) uint8."""
    # Pixel areas on both sides (see `_fit`): output pixel i spans [i, i+1) / px_per_mm.
    S = np.array(
        [[px_per_mm, 0, -x * px_per_mm - 0.5], [0, px_per_mm, -y * px_per_mm - 0.5], [0, 0, 1.0]]
    )
    M = S @ reg.homography @ np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1.0]])
    size = (max(1, round(w * px_per_mm)), max(1, round(h * px_per_mm)))
    # Downsampling a lot: smooth first so thin strokes average instead of aliasing away; only
    # the part of the page the region comes from (a 1-up sheet photographed at 4032 px is
    # 12 MP, the pass's code a few thousand pixels of it).
    shrink = reg.px_per_mm / px_per_mm
    src = gray
    if shrink > 1.6:
        k = int(shrink) | 1
        w_out, h_out = size
        out_corners = np.array([[[0, 0], [w_out, 0], [w_out, h_out], [0, h_out]]], np.float64) - 0.5
        pts = cv2.perspectiveTransform(out_corners, np.linalg.inv(M))[0]
        H, W = gray.shape[:2]
        c0, r0 = (max(0, int(np.floor(v)) - k) for v in pts.min(axis=0))
        c1, r1 = (min(lim, int(np.ceil(v)) + k + 1) for v, lim in zip(pts.max(axis=0), (W, H)))
        if c0 < c1 and r0 < r1:
            src = cv2.GaussianBlur(gray[r0:r1, c0:c1], (k, k), 0)
            M = M @ np.array([[1.0, 0, c0], [0, 1.0, r0], [0, 0, 1.0]])
    return cv2.warpPerspective(
        src, M, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border
    )


def page_ink_fraction(gray: np.ndarray) -> float:
    """Fraction of a page that is clearly darker than its paper (for blank-page tests).

    Uneven light and faint bleed-through from a duplex back don't count: the page is
    normalised by its local background and only marks at under 60% of it are ink.
    """
    h, w = gray.shape[:2]
    f = min(1.0, 600 / max(h, w))
    small = cv2.resize(gray, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    bg = cv2.dilate(small, cv2.getStructuringElement(cv2.MORPH_RECT, (15, 15)))
    bg = cv2.GaussianBlur(bg, (0, 0), 8)
    norm = small.astype(np.float32) / np.maximum(bg.astype(np.float32), 1.0)
    # Ignore a 3% frame: scanner lids and page edges.
    my, mx = max(1, int(0.03 * small.shape[0])), max(1, int(0.03 * small.shape[1]))
    core = norm[my:-my, mx:-mx]
    return float(np.mean(core < 0.6))
