"""The template's own blank rendering, at the reader's working scale.

The reader compares what it sees on a registered pass with what the printer put there
(faces, labels, outlines, tick boxes), so printed ink never counts as a pupil's mark. The
blank pass is drawn by the same code that prints passes (`exitscan.render`) and rasterised
with pdfium, once per template and scale per process.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import pypdfium2 as pdfium

from exitscan import payload
from exitscan.roster import Lesson
from exitscan.template import Rect, SheetLayout, Slot, Template, load_template

#: Working scale of the mark reader: 5 px/mm (127 dpi) resolves a 0.3 mm pencil line.
READ_PX_PER_MM = 5.0


@dataclass(frozen=True)
class Reference:
    """A blank pass at ``px_per_mm``: luminance in [0, 1] (1 = paper) and masks."""

    template: Template
    px_per_mm: float
    lum: np.ndarray  # (rows, cols) float32
    printed: np.ndarray  # (rows, cols) bool: dark print (outlines, features, text), dilated
    paper: np.ndarray  # (rows, cols) uint8: 255 where the blank pass is bare paper, else 0
    paper_small: np.ndarray  # (rows/px_per_mm, cols/px_per_mm) float32: bare-paper fraction
    small: np.ndarray  # (rows, cols) uint8 at 1 px/mm, for telling templates apart


def _blank_lesson(t: Template) -> Lesson:
    return Lesson(
        class_name="",
        lesson="",
        date="",
        criteria=tuple("x" for _ in range(t.max_criteria)),
        next_step_options=tuple("x" for _ in range(len(t.ticks.boxes))) if t.ticks else (),
    )


@lru_cache(maxsize=16)
def reference(template_name: str, px_per_mm: float = READ_PX_PER_MM) -> Reference:
    # Imported here: only a process that reads passes draws them, and reportlab takes ~0.13 s
    # to import (the command's own process, which only collects results, never needs it; the
    # workers' fork server imports it once, see `exitscan.workers.PRELOAD`).
    from reportlab.lib.units import mm
    from reportlab.pdfgen.canvas import Canvas

    from exitscan.render import PassSpec, draw_pass

    t = load_template(template_name)
    w, h = t.size
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(w * mm, h * mm))
    layout = SheetLayout("a4", False, (w, h), (Slot(0, 0, 1.0, Rect(0, 0, w, h)),), 1, 1)
    code = payload.PassCode(t.code, 0, "000000", "", "", "", "", t.max_criteria, "")
    # The code as a flat grey: no zone the reader measures touches it (the template validator
    # sees to that), it is print either way, and at 1 px/mm (`small`) a code averages to grey.
    draw_pass(c, layout, layout.slots[0], t, _blank_lesson(t), PassSpec(code, ""), code_grey=0.5)
    c.showPage()
    c.save()
    doc = pdfium.PdfDocument(buf.getvalue())
    try:
        bitmap = doc[0].render(scale=px_per_mm * 25.4 / 72, grayscale=True)
        img = bitmap.to_numpy().copy()
    finally:
        doc.close()
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    size = (round(w * px_per_mm), round(h * px_per_mm))
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    lum = img.astype(np.float32) / 255.0
    # Print darker than the faces' tinted fill (outlines, features, text) hides ink on it; a little dilation absorbs registration error (~0.4 mm).
    k = max(1, round(0.4 * px_per_mm)) * 2 + 1
    printed = cv2.dilate((lum < 0.7).astype(np.uint8), np.ones((k, k), np.uint8)) > 0
    # Bare paper, well clear of any print: where the paper's own brightness can be measured.
    k2 = max(1, round(0.8 * px_per_mm)) * 2 + 1
    anything = cv2.dilate((lum < 0.97).astype(np.uint8), np.ones((k2, k2), np.uint8)) > 0
    paper = np.where(anything, 0, 255).astype(np.uint8)
    small = cv2.resize(img, (round(w), round(h)), interpolation=cv2.INTER_AREA)
    paper_small = cv2.resize(paper, (round(w), round(h)), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    return Reference(t, px_per_mm, lum, printed, paper, paper_small, small)
