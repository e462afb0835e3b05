"""Identity: decode a registered pass's QR code into whose pass it is and for which lesson.

Registration says where each of the symbol's 37 x 37 modules is, so the code is read by
sampling every module's centre and decoding those levels with our own decoder for exactly
our symbols (`exitscan.qrdecode`: ~0.1 ms, Reed-Solomon with erasures, never a wrong
text). Only when that fails does OpenCV try: at the known corners, on sharpened re-renderings
of the module grid, and with its own detector (a pass printed off-grid). Whole-page QR
detection on noisy 150-200 dpi scans mostly fails. OpenCV's detector sometimes raises
instead of returning empty: that is caught and counts as a miss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from exitscan import payload, qrdecode
from exitscan.register import Registration, warp
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
    if got is not None:
        evidence = {"by": "modules", "corrected": got.corrected, "erasures": got.erasures}
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
