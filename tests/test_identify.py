"""Reading a pass's code where the pass's registration is off at the code (`identify.read_code`).

A phone photo with strong perspective can put the code's module grid a module or two off even
when the pass's four markers fit well. The symbol is then registered again from its own finder
and alignment patterns. The photos here are made from reportlab's module matrix: the symbol
drawn in the template's millimetres, photographed through a known homography (perspective,
blur, a smear, noise), and handed to `read_code` with a registration that is deliberately off.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from reportlab.graphics.barcode.qr import QrCodeWidget

from exitscan import identify, payload, qrdecode
from exitscan.payload import PassCode
from exitscan.read import template_by_code
from exitscan.register import Registration

TEMPLATE = template_by_code("C")
#: The photo's resolution at the pass: 2.9 pixels a module (a 2048-pixel phone photo).
PX_PER_MM = 4.25
#: The drawing's resolution before it is photographed.
DRAW_PX_PER_MM = 24.0


def text_of(serial: int, name: str = "Siobhán Ní Bhriain") -> str:
    return payload.encode(
        PassCode(
            template="C",
            serial=serial,
            lesson_key="a3f9c2",
            student_id=f"{1000 + serial}",
            student_name=name,
            class_name="P3B",
            date="2026-11-23",
            n_criteria=3,
            lesson="Writing: adjectives",
        )
    )


def symbol(text: str) -> np.ndarray:
    """reportlab's module matrix (True = dark) of the symbol `render._draw_qr` prints."""
    w = QrCodeWidget(
        text, barLevel="M", barBorder=payload.QR_BORDER_MODULES, qrVersion=payload.QR_VERSION
    )
    w.qr.make()
    return np.array(w.qr.modules, bool)


def true_geometry(rng: np.random.Generator) -> np.ndarray:
    """(3, 3) template mm -> photo pixels (pixel centres at integers): a turn, a tilt."""
    angle = np.radians(rng.uniform(-20, 20))
    c, s = np.cos(angle), np.sin(angle)
    q = TEMPLATE.qr
    cx, cy = q.x + q.w / 2, q.y + q.h / 2
    k = PX_PER_MM
    about = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1.0]])
    turn = np.array([[k * c, -k * s, 0], [k * s, k * c, 0], [0, 0, 1.0]])
    tilt = np.array([[1, 0, 0], [0, 1, 0], [*rng.uniform(-1.5e-3, 1.5e-3, 2), 1.0]])  # per pixel
    centre = np.array([[1, 0, 300], [0, 1, 300], [0, 0, 1.0]])
    return centre @ tilt @ turn @ about


def photograph(
    dark: np.ndarray, mm_to_px: np.ndarray, rng: np.random.Generator, smear: int = 0
) -> np.ndarray:
    """A 600 x 600 grey photo of the symbol (``dark``: 37 x 37 modules) printed at the template's
    code box and seen through ``mm_to_px``: blurred, optionally smeared along the photo's rows,
    dimmed, noisy."""
    q = TEMPLATE.qr
    module = q.w / (qrdecode.SIZE + 2 * payload.QR_BORDER_MODULES)
    margin = 12.0  # mm of paper around the code box
    x0, y0 = q.x - margin, q.y - margin
    side = round((q.w + 2 * margin) * DRAW_PX_PER_MM)
    paper = np.full((side, side), 235, np.float32)
    first = (margin + payload.QR_BORDER_MODULES * module) * DRAW_PX_PER_MM
    for r, c in zip(*np.nonzero(dark)):
        a = (first + c * module * DRAW_PX_PER_MM, first + r * module * DRAW_PX_PER_MM)
        b = (first + (c + 1) * module * DRAW_PX_PER_MM, first + (r + 1) * module * DRAW_PX_PER_MM)
        paper[round(a[1]) : round(b[1]), round(a[0]) : round(b[0])] = 25
    shrink = DRAW_PX_PER_MM / PX_PER_MM
    paper = cv2.GaussianBlur(paper, (0, 0), 0.5 * shrink)
    # Drawing pixel u (centre) is at mm x0 + (u + 0.5) / DRAW_PX_PER_MM.
    drawing_to_mm = np.array(
        [
            [1 / DRAW_PX_PER_MM, 0, x0 + 0.5 / DRAW_PX_PER_MM],
            [0, 1 / DRAW_PX_PER_MM, y0 + 0.5 / DRAW_PX_PER_MM],
            [0, 0, 1],
        ]
    )
    photo = cv2.warpPerspective(
        paper, mm_to_px @ drawing_to_mm, (600, 600), flags=cv2.INTER_LINEAR, borderValue=235
    )
    photo = cv2.GaussianBlur(photo, (0, 0), 0.8)
    if smear:
        photo = cv2.filter2D(photo, -1, np.full((1, smear), 1.0 / smear, np.float32))
    photo = 30 + 0.8 * photo + rng.normal(0, 4, photo.shape)
    return np.clip(photo, 0, 255).astype(np.uint8)


def registration(mm_to_px: np.ndarray, shift_mm=(0.0, 0.0), turn_deg: float = 0.0) -> Registration:
    """The pass's registration (image pixel areas -> template mm) for a photo seen through
    ``mm_to_px``, wrong by a shift and a turn about the code's centre."""
    q = TEMPLATE.qr
    cx, cy = q.x + q.w / 2, q.y + q.h / 2
    a = np.radians(turn_deg)
    c, s = np.cos(a), np.sin(a)
    error = np.array(
        [
            [c, -s, cx - c * cx + s * cy + shift_mm[0]],
            [s, c, cy - s * cx - c * cy + shift_mm[1]],
            [0, 0, 1],
        ]
    )
    areas = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1.0]])  # pixel areas -> pixel centres
    homography = error @ np.linalg.inv(mm_to_px) @ areas
    return Registration(0, (), homography / homography[2, 2], 0.25, PX_PER_MM)


def first_reading(gray: np.ndarray, reg: Registration) -> qrdecode.DecodeResult | None:
    """What the pass's registration alone reads (the path before re-registration)."""
    return qrdecode.decode_levels(identify._module_levels(gray, reg, TEMPLATE))


@pytest.mark.parametrize("seed", range(6))
def test_a_code_a_module_off_the_registration_reads_from_its_own_patterns(seed):
    """The pass's registration puts the grid 1-3 modules off at the code (0.7-2 mm and a
    turn): the first reading fails; the symbol's own finders and alignment pattern read it."""
    rng = np.random.default_rng(seed)
    text = text_of(seed, ("Siobhán Ní Bhriain", "Zoë O'Connor", "Łukasz Dąbrowski")[seed % 3])
    mm_to_px = true_geometry(rng)
    gray = photograph(symbol(text), mm_to_px, rng, smear=5 if seed % 2 else 0)
    direction = rng.uniform(0, 2 * np.pi)
    shift = rng.uniform(0.7, 2.0) * np.array([np.cos(direction), np.sin(direction)])
    off = registration(mm_to_px, shift, turn_deg=rng.choice([-1.0, 1.0]))
    assert first_reading(gray, registration(mm_to_px)).text == text  # the photo itself reads
    assert first_reading(gray, off) is None
    ident = identify.read_code(gray, off, TEMPLATE)
    assert ident.code == payload.decode(text), ident
    assert ident.evidence["by"].startswith("finders")
    assert ident.evidence["moved_modules"] > 0.7
    assert min(ident.evidence["match"][:3]) > 0.7


def test_the_re_registered_grid_lands_on_the_modules():
    """The registration `_relocate` gives puts every module centre within 0.2 modules of where
    the photo has it, from a start 2 modules off."""
    rng = np.random.default_rng(21)
    mm_to_px = true_geometry(rng)
    gray = photograph(symbol(text_of(3)), mm_to_px, rng)
    relocated = identify._relocate(gray, registration(mm_to_px, (1.2, -0.6), 1.5), TEMPLATE)
    assert isinstance(relocated, identify._Relocated)
    q = TEMPLATE.qr
    module = q.w / (qrdecode.SIZE + 2 * payload.QR_BORDER_MODULES)
    c = q.x + (payload.QR_BORDER_MODULES + np.arange(qrdecode.SIZE) + 0.5) * module
    r = q.y + (payload.QR_BORDER_MODULES + np.arange(qrdecode.SIZE) + 0.5) * module
    centres = np.stack(np.meshgrid(c, r), axis=-1).reshape(1, -1, 2)
    truth = cv2.perspectiveTransform(centres, mm_to_px)[0]
    got = cv2.perspectiveTransform(centres, relocated.reg.to_image())[0]
    assert np.abs(got - truth).max() < 0.2 * module * PX_PER_MM
    assert relocated.by == "finders+alignment"


def test_random_data_behind_true_patterns_still_reads_as_nothing():
    """Finders, timing, alignment and format as printed, data modules random: the symbol's
    own registration is found (its patterns are real) and still no code comes out."""
    rng = np.random.default_rng(5)
    bits = qrdecode._BIT_FLAT.ravel()
    for trial in range(4):
        dark = symbol(text_of(trial))
        dark.ravel()[bits] = rng.integers(0, 2, bits.size).astype(bool)
        mm_to_px = true_geometry(rng)
        gray = photograph(dark, mm_to_px, rng, smear=5 if trial % 2 else 0)
        off = registration(mm_to_px, (0.9, 0.5), 1.0)
        assert isinstance(identify._relocate(gray, off, TEMPLATE), identify._Relocated)
        ident = identify.read_code(gray, off, TEMPLATE)
        assert ident.code is None and ident.error == "the pass code (QR) could not be read"


def test_a_damaged_code_or_none_at_all_is_said_not_guessed():
    """A third of the symbol blotted out, or blank paper where the code should be: nothing."""
    rng = np.random.default_rng(8)
    mm_to_px = true_geometry(rng)
    dark = symbol(text_of(9))
    dark[12:37, 10:30] = True  # a felt-tip blot over the data and the alignment pattern
    off = registration(mm_to_px, (1.0, 0.0))
    assert identify.read_code(photograph(dark, mm_to_px, rng), off, TEMPLATE).code is None
    blank = photograph(np.zeros_like(dark), mm_to_px, rng)
    assert isinstance(identify._relocate(blank, off, TEMPLATE), str)  # no finder to be found
    assert identify.read_code(blank, off, TEMPLATE).code is None


def test_a_registration_that_is_right_is_read_as_before():
    """Where the pass's registration is right the first reading stands: no re-registration."""
    rng = np.random.default_rng(3)
    text = text_of(4)
    mm_to_px = true_geometry(rng)
    ident = identify.read_code(
        photograph(symbol(text), mm_to_px, rng), registration(mm_to_px), TEMPLATE
    )
    assert ident.code == payload.decode(text)
    assert ident.evidence["by"] == "modules"


def test_the_relocated_registration_is_a_registration():
    """Everything but the homography is the pass's own (markers, residual, resolution)."""
    rng = np.random.default_rng(4)
    mm_to_px = true_geometry(rng)
    off = registration(mm_to_px, (0.8, 0.0))
    relocated = identify._relocate(photograph(symbol(text_of(1)), mm_to_px, rng), off, TEMPLATE)
    assert isinstance(relocated, identify._Relocated)
    new = relocated.reg
    assert (new.group, new.markers, new.residual_mm, new.px_per_mm) == (
        off.group,
        off.markers,
        off.residual_mm,
        off.px_per_mm,
    )
    assert not np.allclose(new.homography, off.homography)
