"""Identity: decode a registered pass's QR code into whose pass it is and for which lesson.

The code is read from the registered image, where the template says it is, resampled at a
few scales (whole-page QR detection on noisy 150-200 dpi scans mostly fails). OpenCV's
detector sometimes raises instead of returning empty: that is caught and counts as a miss.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from exitscan import payload
from exitscan.register import Registration, warp
from exitscan.template import Template

#: Margin around the code's box (mm) so the finder patterns are never cut by a small error.
QR_MARGIN_MM = 2.5


@dataclass(frozen=True)
class Identity:
    code: payload.PassCode | None
    error: str  # plain words when code is None


def _attempts(crop: np.ndarray):
    yield crop
    _, otsu = cv2.threshold(crop, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    yield otsu
    yield cv2.GaussianBlur(crop, (0, 0), 1.2)


def _symbol_corners(template: Template, px_per_mm: float) -> np.ndarray:
    """Where the symbol's four corners fall in the crop: the code's box less its quiet zone."""
    module = template.qr.w / (payload.QR_MODULES + 2 * payload.QR_BORDER_MODULES)
    a = (QR_MARGIN_MM + payload.QR_BORDER_MODULES * module) * px_per_mm - 0.5
    b = a + payload.QR_MODULES * module * px_per_mm
    return np.array([[[a, a], [b, a], [b, b], [a, b]]], dtype=np.float32)


def read_code(gray: np.ndarray, reg: Registration, template: Template) -> Identity:
    q = template.qr.expanded(QR_MARGIN_MM)
    detector = cv2.QRCodeDetector()
    # Fast path: registration already says where the symbol is, so only decode (~3 ms).
    px_per_mm = 8.0
    crop = warp(gray, reg, q.x, q.y, q.w, q.h, px_per_mm)
    try:
        text, _ = detector.decode(crop, _symbol_corners(template, px_per_mm))
    except cv2.error:
        text = ""
    if text:
        try:
            return Identity(payload.decode(text), "")
        except payload.PayloadError:
            pass
    last_text = text
    for px_per_mm in (8.0, 12.0, 6.0):
        crop = warp(gray, reg, q.x, q.y, q.w, q.h, px_per_mm)
        for attempt in _attempts(crop):
            try:
                text, _, _ = detector.detectAndDecode(attempt)
            except cv2.error:
                continue
            if text:
                last_text = text
                try:
                    return Identity(payload.decode(text), "")
                except payload.PayloadError:
                    continue
    if last_text:
        try:
            payload.decode(last_text)
        except payload.PayloadError as e:
            return Identity(None, f"the pass code says something else: {e}")
    return Identity(None, "the pass code (QR) could not be read")
