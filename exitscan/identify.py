"""Identity: decode a registered pass's QR code into whose pass it is and for which lesson.

Registration says where each of the symbol's 37 x 37 modules is, so the code is read by
sampling every module's centre and decoding those levels with our own decoder for exactly
our symbols (`exitscan.qrdecode`: ~0.1 ms, Reed-Solomon with erasures, never a wrong
text). When that fails, the symbol is registered again from its own finder and alignment
patterns (`_relocate`): the pass's registration comes from the four markers around the whole
pass, and on a phone photo with strong perspective it can put the code's grid a module or two
off even when the markers fit to 0.3 mm. Only when that fails too does OpenCV try: at the
known corners, on sharpened re-renderings of the module grid, and with its own detector (a
pass printed off-grid). Whole-page QR detection on noisy 150-200 dpi scans mostly fails.
OpenCV's detector sometimes raises instead of returning empty: that is caught and counts as
a miss.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from exitscan import payload, qrdecode
from exitscan.register import Registration, _peak, warp
from exitscan.template import Template

#: Margin around the code's box (mm) so the finder patterns are never cut by a small error.
QR_MARGIN_MM = 2.5


@dataclass(frozen=True)
class Identity:
    code: payload.PassCode | None
    error: str  # plain words when code is None
    evidence: dict = field(default_factory=dict)  # how it was read: {"by": ..., "corrected": n, ...}


def _symbol_corners(template: Template, px_per_mm: float) -> np.ndarray:
    """Where the symbol's four corners fall in the crop: the code's box less its quiet zone."""
    module = template.qr.w / (payload.QR_MODULES + 2 * payload.QR_BORDER_MODULES)
    a = (QR_MARGIN_MM + payload.QR_BORDER_MODULES * module) * px_per_mm - 0.5
    b = a + payload.QR_MODULES * module * px_per_mm
    return np.array([[[a, a], [b, a], [b, b], [a, b]]], dtype=np.float32)


#: Pixels per module when the module grid is resampled, and the central part of each
#: module that is averaged (the edges blur into the neighbours): the centre pixel of 3 is
#: sampled at the module's very centre, as the centre of 7 was, from 5x fewer pixels.
_PER_MODULE = 3
_CORE = slice(1, 2)
#: (blur sigma, amount) of the unsharp masks tried on the module levels: blur spreads a lone
#: dark module into its light neighbours; sharpening the grid undoes some of it. Measured on
#: 136-dpi phone PDFs (0.52 mm modules, 2.7 px): 0 of 31 unread codes -> 18 of 31.
_SHARPEN = ((0.7, 0.0), (0.7, 2.5), (0.7, 4.0), (0.7, 6.0))
_THRESHOLDS = (0.5, 0.42, 0.58, 0.35, 0.65)


def _finder_mask(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(dark, light) module masks of the three finder patterns of an n x n symbol."""
    dark = np.zeros((n, n), bool)
    light = np.zeros((n, n), bool)
    pattern = np.ones((7, 7), bool)
    pattern[1:6, 1:6] = False
    pattern[2:5, 2:5] = True
    for y, x in ((0, 0), (0, n - 7), (n - 7, 0)):
        dark[y : y + 7, x : x + 7] = pattern
        light[y : y + 7, x : x + 7] = ~pattern
    return dark, light


def _module_levels(gray: np.ndarray, reg: Registration, template: Template) -> np.ndarray:
    """Mean grey level at the centre of each module: (n, n) float32, from the known geometry.

    Registration is good to ~0.1 mm and a module is ~0.55 mm, so sampling module centres
    works even where blur or JPEG has smeared the edges past OpenCV's own detector.
    """
    n = payload.QR_MODULES
    module = template.qr.w / (n + 2 * payload.QR_BORDER_MODULES)
    x0 = template.qr.x + payload.QR_BORDER_MODULES * module
    y0 = template.qr.y + payload.QR_BORDER_MODULES * module
    img = warp(gray, reg, x0, y0, n * module, n * module, _PER_MODULE / module)
    img = cv2.resize(img, (n * _PER_MODULE, n * _PER_MODULE), interpolation=cv2.INTER_LINEAR)
    cells = img.reshape(n, _PER_MODULE, n, _PER_MODULE).astype(np.float32)
    return cells[:, _CORE, :, _CORE].mean(axis=(1, 3))


#: Re-registering the symbol from its own patterns (`_relocate`): how far (modules) each
#: finder is looked for from where the pass's registration puts it (phone photos: up to 3
#: modules off; on synthetic photos 4 reads codes up to 4 modules off, 3 only up to 3), and
#: the alignment pattern from where the three finders put it.
_FINDER_REACH = 4.0
_ALIGN_REACH = 1.0
#: Pixels a module of the rectified crop the patterns are looked for in, and the crop's
#: margin around the symbol (modules): a finder's separator, the reach, and one to spare.
_LOCATE_PER_MODULE = 4
_LOCATE_MARGIN = 6
#: Blur (modules) of the pattern templates: a phone photo's patterns are never sharp.
_LOCATE_BLUR = 0.5
#: Normalised correlation each finder must reach to count as found (found ones score
#: 0.8-0.9 on blurred, smeared phone photos). An alignment pattern below it is left out:
#: the three finders alone then fix the grid (affine).
_MIN_MATCH = 0.5
#: A grid that moves less than this (modules) everywhere would read as the first one did.
_MIN_MOVE = 0.1
#: Module coordinates (x, y; module corners at integers) of the three finders' centres and
#: of the version-5 alignment pattern's (module row and column 30).
_N = payload.QR_MODULES
_FINDER_CENTRES = ((3.5, 3.5), (_N - 3.5, 3.5), (3.5, _N - 3.5))
_ALIGN_CENTRE = (_N - 6.5, _N - 6.5)


def _pattern_template(side: int, rings: tuple[int, ...]) -> np.ndarray:
    """A ``side`` x ``side``-module pattern of concentric squares (``rings``: 1 light, 0
    dark, outermost first, each one module in from the last), rendered at
    `_LOCATE_PER_MODULE` pixels a module and blurred: (rows, cols) float32."""
    grid = np.empty((side, side), np.float32)
    for k, value in enumerate(rings):
        grid[k : side - k, k : side - k] = value
    k = _LOCATE_PER_MODULE
    big = cv2.resize(grid, None, fx=k, fy=k, interpolation=cv2.INTER_NEAREST)
    return cv2.GaussianBlur(big, (0, 0), _LOCATE_BLUR * k)


#: A finder with its light separator (9 x 9 modules); the alignment pattern (5 x 5).
_FINDER_TEMPLATE = _pattern_template(9, (1, 0, 1, 0))
_ALIGN_TEMPLATE = _pattern_template(5, (0, 1, 0))


def _crop_px(x: float, y: float) -> np.ndarray:
    """Where module coordinates (x, y) fall in the rectified crop, pixel centres at integers."""
    return (np.array([x, y]) + _LOCATE_MARGIN) * _LOCATE_PER_MODULE - 0.5


def _match(
    crop: np.ndarray, template: np.ndarray, where: np.ndarray, reach: float
) -> tuple[np.ndarray, float]:
    """The centre (crop pixels, x y) of the best match of ``template`` within ``reach``
    modules of ``where``, to a fraction of a pixel, and its normalised correlation."""
    side = template.shape[0]
    pad = int(np.ceil(reach * _LOCATE_PER_MODULE))
    x0, y0 = (round(v - (side - 1) / 2) - pad for v in where)
    x0, y0 = max(0, x0), max(0, y0)
    window = crop[y0 : y0 + side + 2 * pad, x0 : x0 + side + 2 * pad]
    if min(window.shape) < side:
        return where, -1.0
    c, r, best = _peak(cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED))
    return np.array([x0 + c + (side - 1) / 2, y0 + r + (side - 1) / 2]), best


@dataclass(frozen=True)
class _Relocated:
    """The symbol registered from its own patterns: a registration whose template frame puts
    the module grid where the finders (and the alignment pattern) say, and the evidence."""

    reg: Registration
    scores: tuple[float, ...]  # finders' normalised correlation, then the alignment pattern's
    moved: float  # modules: how far the grid moved from the pass registration's, at most
    by: str  # "finders+alignment" (a homography) or "finders" (affine)


@dataclass(frozen=True)
class _Patterns:
    """The symbol's finder patterns (and alignment pattern) as found in a rectified crop of
    the code's region, placed by the pass registration ``reg``."""

    nominal: np.ndarray  # (4, 2) crop px: where ``reg`` puts the three finders and the alignment
    found: np.ndarray  # (3 or 4, 2) crop px: where they are (the alignment pattern when clear)
    scores: tuple[float, ...]  # finders' normalised correlation, then the alignment pattern's
    crop_to_mm: np.ndarray  # (3, 3): crop px -> template mm as ``reg`` has it


def _find_patterns(gray: np.ndarray, reg: Registration, template: Template) -> _Patterns | str:
    """Template-match the three finders (within `_FINDER_REACH` modules of where ``reg`` puts
    them) and the alignment pattern (near where the finders put it) in a rectified crop."""
    module = template.qr.w / (_N + 2 * payload.QR_BORDER_MODULES)
    x0 = template.qr.x + (payload.QR_BORDER_MODULES - _LOCATE_MARGIN) * module
    y0 = template.qr.y + (payload.QR_BORDER_MODULES - _LOCATE_MARGIN) * module
    side = (_N + 2 * _LOCATE_MARGIN) * module
    crop = warp(gray, reg, x0, y0, side, side, _LOCATE_PER_MODULE / module).astype(np.float32)
    # Everything in crop pixels: where the registration puts each pattern, where it is.
    nominal = [_crop_px(*centre) for centre in (*_FINDER_CENTRES, _ALIGN_CENTRE)]
    found, scores = [], []
    for where in nominal[:3]:
        at, score = _match(crop, _FINDER_TEMPLATE, where, _FINDER_REACH)
        if score < _MIN_MATCH:
            return f"a finder pattern not found (best match {score:.2f})"
        found.append(at)
        scores.append(score)
    src, dst = np.array(nominal, np.float32), np.array(found, np.float32)
    affine = cv2.getAffineTransform(src[:3], dst)
    at, score = _match(crop, _ALIGN_TEMPLATE, affine @ (*nominal[3], 1.0), _ALIGN_REACH)
    scores.append(score)
    if score >= _MIN_MATCH:
        found.append(at)
    # Warp's pixel areas: crop pixel u spans [u, u + 1) / scale from the crop's corner.
    scale = _LOCATE_PER_MODULE / module
    crop_to_mm = np.array(
        [[1 / scale, 0, x0 + 0.5 / scale], [0, 1 / scale, y0 + 0.5 / scale], [0, 0, 1.0]]
    )
    return _Patterns(src, np.array(found, np.float64), tuple(scores), crop_to_mm)


def _relocate(gray: np.ndarray, reg: Registration, template: Template) -> _Relocated | str:
    """Register the symbol again from its three finder patterns and its alignment pattern.

    The pass's registration places a rectified crop of the code's region; each finder is
    template-matched (a blurred 9 x 9-module finder with its separator) within
    `_FINDER_REACH` modules of where it should be, the alignment pattern near where the three
    finders put it, and the four centres fix a homography from module coordinates to the
    crop (the three alone an affine map when the alignment pattern is not clear). Returns the
    registration that puts the modules there, or why there is none.
    """
    found = _find_patterns(gray, reg, template)
    if isinstance(found, str):
        return found
    src, dst = found.nominal.astype(np.float32), found.found.astype(np.float32)
    if len(dst) == 4:
        correction = cv2.getPerspectiveTransform(src, dst)
        by = "finders+alignment"
    else:
        correction = np.vstack([cv2.getAffineTransform(src[:3], dst), [0.0, 0.0, 1.0]])
        by = "finders"
    # How far the correction moves the module centres, at most.
    centres = np.arange(_N) + 0.5
    grid = _crop_px(*np.meshgrid(centres, centres)).reshape(2, -1).T.reshape(1, -1, 2)
    moved = float(np.abs(cv2.perspectiveTransform(grid, correction) - grid).max())
    moved /= _LOCATE_PER_MODULE
    # The symbol's registration: image -> template mm as the pass registration has it ->
    # crop pixels -> where the patterns say it should be -> template mm.
    crop_to_mm = found.crop_to_mm
    homography = crop_to_mm @ np.linalg.inv(correction) @ np.linalg.inv(crop_to_mm) @ reg.homography
    relocated = replace(reg, homography=homography / homography[2, 2])
    return _Relocated(relocated, found.scores, moved, by)


@dataclass(frozen=True)
class SymbolPoints:
    """The centres of a pass's QR finder patterns (and alignment pattern, when clear) in the
    scan, with where the template prints them: four more known points of the pass."""

    image_px: np.ndarray  # (3 or 4, 2) float64: x, y in the scan, OpenCV's pixel centres
    template_mm: np.ndarray  # (3 or 4, 2) float64: the same centres in template mm
    scores: tuple[float, ...]  # normalised correlation of each (finders, then alignment)


#: Correlation every pattern must reach to be used as a registration point (higher than
#: `_MIN_MATCH`, which only has to find the grid well enough to read it).
_MIN_POINT_MATCH = 0.6
#: How far (modules) the alignment pattern may be from where the three finders put it (an
#: affine map: on phone photos it is found 0.05 modules off, at most 0.25 in 2,350 passes).
#: The alignment pattern is the point that fixes a refit's perspective, and one matched a
#: module off could be bent into the fit unseen: it is checked against the finders here.
_MAX_ALIGN_OFF = 0.4


def symbol_points(gray: np.ndarray, reg: Registration, template: Template) -> SymbolPoints | str:
    """Locate the code's three finder centres and its alignment centre in ``gray`` to a
    fraction of a pixel (template matching in a crop rectified by ``reg``, which only has to
    be within `_FINDER_REACH` modules), or say why not. All four must match well."""
    found = _find_patterns(gray, reg, template)
    if isinstance(found, str):
        return found
    if len(found.found) < 4:
        return f"the code's alignment pattern is not clear (match {found.scores[3]:.2f})"
    if min(found.scores) < _MIN_POINT_MATCH:
        return f"the code's patterns are not clear (match {min(found.scores):.2f})"
    affine = cv2.getAffineTransform(found.nominal[:3].astype(np.float32), found.found[:3].astype(np.float32))
    off = float(np.linalg.norm(affine @ (*found.nominal[3], 1.0) - found.found[3])) / _LOCATE_PER_MODULE
    if off > _MAX_ALIGN_OFF:
        return f"the code's alignment pattern is {off:.1f} modules from where its finders put it"
    module = template.qr.w / (_N + 2 * payload.QR_BORDER_MODULES)
    centres = np.array([*_FINDER_CENTRES, _ALIGN_CENTRE], np.float64)
    template_mm = np.array([template.qr.x, template.qr.y]) + (centres + payload.QR_BORDER_MODULES) * module
    # Crop px -> template mm as the registration has it -> image (pixel areas -> centres).
    as_mm = cv2.perspectiveTransform(found.found.reshape(1, -1, 2), found.crop_to_mm)
    image_px = cv2.perspectiveTransform(as_mm, np.linalg.inv(reg.homography))[0] - 0.5
    return SymbolPoints(image_px, template_mm, found.scores)


def _render_symbol(bits: np.ndarray) -> np.ndarray:
    """A clean image of a symbol (True = dark module) with a 4-module quiet zone."""
    n = bits.shape[0]
    canvas = np.full((n + 8, n + 8), 255, np.uint8)
    canvas[4 : 4 + n, 4 : 4 + n] = np.where(bits, 0, 255)
    return cv2.resize(canvas, None, fx=8, fy=8, interpolation=cv2.INTER_NEAREST)


def _decode_resampled(detector, levels: np.ndarray) -> list[str]:
    dark, light = _finder_mask(levels.shape[0])
    lo, hi = float(np.median(levels[dark])), float(np.median(levels[light]))
    if hi - lo < 15:
        return []  # no contrast: there is no code here (or it is covered)
    n = levels.shape[0]
    corners = np.array([[[32, 32], [32 + 8 * n, 32], [32 + 8 * n, 32 + 8 * n], [32, 32 + 8 * n]]], np.float32) - 0.5
    for sigma, amount in _SHARPEN:
        lv = levels + amount * (levels - cv2.GaussianBlur(levels, (0, 0), sigma)) if amount else levels
        lo, hi = float(np.median(lv[dark])), float(np.median(lv[light]))
        for f in _THRESHOLDS:
            try:
                text, _ = detector.decode(_render_symbol(lv < lo + f * (hi - lo)), corners)
            except cv2.error:
                continue
            if text:
                return [text]
    return []


def read_code(gray: np.ndarray, reg: Registration, template: Template) -> Identity:
    """Decode the pass's QR code; a code that can't be read is said, never guessed."""
    levels = _module_levels(gray, reg, template)
    got = qrdecode.decode_levels(levels)
    evidence: dict = {"by": "modules"}
    if got is None:
        # The pass's registration may be off at the code: register the symbol by its own
        # patterns and read it again (same decoder, same error budget).
        relocated = _relocate(gray, reg, template)
        if isinstance(relocated, _Relocated) and relocated.moved >= _MIN_MOVE:
            got = qrdecode.decode_levels(_module_levels(gray, relocated.reg, template))
            evidence = {
                "by": relocated.by,
                "moved_modules": round(relocated.moved, 2),
                "match": [round(v, 2) for v in relocated.scores],
            }
    if got is not None:
        evidence |= {"corrected": got.corrected, "erasures": got.erasures}
        try:
            return Identity(payload.decode(got.text), "", evidence)
        except payload.PayloadError as e:
            return Identity(None, f"the pass code says something else: {e}", evidence)
    detector = cv2.QRCodeDetector()
    texts: list[str] = []
    # 1. Registration says where the symbol is: OpenCV only decodes (~3 ms).
    q = template.qr.expanded(QR_MARGIN_MM)
    px_per_mm = 8.0
    crop = warp(gray, reg, q.x, q.y, q.w, q.h, px_per_mm)
    try:
        text, _ = detector.decode(crop, _symbol_corners(template, px_per_mm))
        texts.append(text)
    except cv2.error:
        pass
    # 2. Blurred or noisy scans: sample each module's centre, decode a clean re-rendering.
    if not any(texts):
        texts += _decode_resampled(detector, levels)
    # 3. Last resort: OpenCV's own detector on the crop (a pass printed off-grid, say).
    if not any(texts):
        for attempt in (crop, cv2.threshold(crop, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]):
            try:
                text, _, _ = detector.detectAndDecode(attempt)
                texts.append(text)
            except cv2.error:
                continue
            if text:
                break
    error = ""
    for text in (t for t in texts if t):
        try:
            return Identity(payload.decode(text), "", {"by": "opencv"})
        except payload.PayloadError as e:
            error = f"the pass code says something else: {e}"
    return Identity(None, error or "the pass code (QR) could not be read", {"by": ""})
