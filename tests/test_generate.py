"""`exitscan generate`, end to end: real PDFs, rasterised by pdfium, read back with OpenCV.

Every pass of every template, passes per sheet and paper size must carry its four ArUco
markers exactly where the template and the sheet layout say, and a QR code that OpenCV
decodes back to the pupil and lesson; the names, lesson and criteria must be real text in
the PDF. Bad input must stop with exit code 3, a message naming the file/option, and no PDF.
"""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest
from conftest import UNICODE_NAMES

from exitscan import payload
from exitscan.render import plan_passes
from exitscan.roster import Lesson, Pupil
from exitscan.template import (
    Rect,
    SheetLayout,
    Slot,
    Template,
    load_template,
    marker_ids,
    sheet_layout,
)

#: Rendering resolution: an ordinary copier setting. At 150 dpi the 4-up Letter code (0.55 mm
#: modules, 3.2 px) is at the edge of what OpenCV decodes even from a perfect rendering.
DPI = 200
PX_PER_MM = DPI / 25.4
PT_PER_MM = 72 / 25.4
#: How far (mm on the sheet) a detected marker corner may be from where the template puts it.
MARKER_TOL_MM = 1.0

TEMPLATES = ("classic", "ticks", "criteria")
CLASS = "P3B"
LESSON = "Writing: adjectives"
DATE = "2026-11-23"
INTENTION = "To describe a character"
CRITERIA = ("I can use two adjectives", "I can use a comma in a list")
OPTIONS = ("Practise my spellings", "Ask for help with adjectives")

_ARUCO = cv2.aruco.ArucoDetector(
    cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_100), cv2.aruco.DetectorParameters()
)


# --------------------------------------------------------------------------- reading helpers


def render_gray(page: pdfium.PdfPage) -> np.ndarray:
    """The page as a (rows, cols) uint8 image at `DPI`."""
    img = page.render(scale=DPI / 72, grayscale=True).to_numpy()
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def to_px(slot: Slot, x_mm: float, y_mm: float) -> tuple[float, float]:
    """A point in a pass's millimetre frame -> (x, y) pixel on the rendered sheet."""
    return ((slot.x + x_mm * slot.scale) * PX_PER_MM, (slot.y + y_mm * slot.scale) * PX_PER_MM)


def find_markers(gray: np.ndarray) -> dict[int, np.ndarray]:
    """ArUco ID -> its 4 corners (4, 2) in pixels (x, y; OpenCV's TL, TR, BR, BL order)."""
    corners, ids, _ = _ARUCO.detectMarkers(gray)
    if ids is None:
        return {}
    ids_list = ids.ravel().tolist()
    assert len(ids_list) == len(set(ids_list)), f"marker IDs repeat on one page: {sorted(ids_list)}"
    return {i: c.reshape(4, 2) for i, c in zip(ids_list, corners)}


def read_qr(gray: np.ndarray, slot: Slot, template: Template) -> payload.PassCode:
    """Decode the QR of the pass in ``slot`` from a crop around where the template puts it.

    As the reader does: first decode at the symbol's known corners (the code's box less its
    quiet zone), then let OpenCV detect it in the upscaled crop; `cv2.error` counts as a miss.
    """
    q = template.qr.expanded(2.0)
    x0, y0 = (int(v) for v in to_px(slot, q.x, q.y))
    x1, y1 = (math.ceil(v) for v in to_px(slot, q.right, q.bottom))
    crop = gray[max(0, y0) : y1, max(0, x0) : x1]
    module = template.qr.w / (payload.QR_MODULES + 2 * payload.QR_BORDER_MODULES)
    a = payload.QR_BORDER_MODULES * module
    b = template.qr.w - a
    detector = cv2.QRCodeDetector()
    for factor in (3, 2, 4):
        big = cv2.resize(crop, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        corners = [to_px(slot, template.qr.x + u, template.qr.y + v) for u, v in ((a, a), (b, a), (b, b), (a, b))]
        pts = np.array([[[(x - x0) * factor - 0.5, (y - y0) * factor - 0.5] for x, y in corners]], np.float32)
        for attempt in ("corners", "detect"):
            try:
                if attempt == "corners":
                    text, _ = detector.decode(big, pts)
                else:
                    text, _, _ = detector.detectAndDecode(big)
            except cv2.error:
                continue
            if text:
                return payload.decode(text)
    pytest.fail(f"no QR code could be read in the pass at sheet ({slot.x:.1f}, {slot.y:.1f}) mm")


def slot_text(page: pdfium.PdfPage, layout: SheetLayout, slot: Slot) -> str:
    """The PDF text inside one slot's cell, whitespace collapsed."""
    sheet_h = layout.size[1]
    c = slot.cell
    text = page.get_textpage().get_text_bounded(
        left=c.x * PT_PER_MM,
        bottom=(sheet_h - c.bottom) * PT_PER_MM,
        right=c.right * PT_PER_MM,
        top=(sheet_h - c.y) * PT_PER_MM,
    )
    return " ".join(text.split())


def check_markers(gray: np.ndarray, layout: SheetLayout, template: Template, serials: list[int]) -> dict[int, np.ndarray]:
    """All 4 markers of every pass found, with the expected IDs, where the template puts them."""
    found = find_markers(gray)
    expected = {mid for s in serials for mid in marker_ids(s)}
    assert set(found) == expected, f"markers found {sorted(found)}, expected {sorted(expected)}"
    for slot, serial in zip(layout.slots, serials):
        for corner, mid in enumerate(marker_ids(serial)):
            want = np.array([to_px(slot, x, y) for x, y in template.marker_corners_mm()[corner]])
            err_mm = np.abs(found[mid] - want).max() / PX_PER_MM
            assert err_mm <= MARKER_TOL_MM, f"marker {mid} is {err_mm:.2f} mm from where the template puts it"
    return found


def generate_args(template_name: str, out: Path, per_page: int = 4, paper: str = "a4") -> list[str]:
    args = ["generate", "--template", template_name, "--class", CLASS, "--lesson", LESSON, "--date", DATE,
            "--intention", INTENTION, "--per-page", str(per_page), "--paper", paper, "--out", str(out)]
    for c in CRITERIA:
        args += ["--criterion", c]
    if template_name == "ticks":
        for o in OPTIONS:
            args += ["--next-step-option", o]
    return args


# --------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("paper", ["a4", "letter"])
@pytest.mark.parametrize("per_page", [1, 2, 4])
@pytest.mark.parametrize("template_name", TEMPLATES)
def test_every_pass_has_its_markers_code_and_text(template_name, per_page, paper, tmp_path, write_roster, run_exitscan):
    # One sheet per PDF: named passes then a spare (1-up: a named pass on A4, a spare on Letter).
    # Names rotate with the template so every name is printed and read somewhere in the matrix.
    k = TEMPLATES.index(template_name)
    names = UNICODE_NAMES[k:] + UNICODE_NAMES[:k]
    n_named = (1 if paper == "a4" else 0) if per_page == 1 else per_page - 1
    pupils = [(f"id-{UNICODE_NAMES.index(n) + 1}", n) for n in names[:n_named]]
    out = tmp_path / "passes.pdf"
    args = generate_args(template_name, out, per_page, paper) + ["--spares", str(per_page - n_named)]
    if pupils:
        args += ["--roster", str(write_roster(pupils))]
    res = run_exitscan(*args)
    assert res.code == 0, res.err

    template = load_template(template_name)
    layout = sheet_layout(template, paper, per_page)
    pdf = pdfium.PdfDocument(out)
    assert len(pdf) == 1
    page = pdf[0]
    w_pt, h_pt = page.get_size()
    assert (w_pt / PT_PER_MM, h_pt / PT_PER_MM) == pytest.approx(layout.size, abs=0.1)

    gray = render_gray(page)
    check_markers(gray, layout, template, list(range(per_page)))
    keys = set()
    for serial, slot in enumerate(layout.slots):
        code = read_qr(gray, slot, template)
        keys.add(code.lesson_key)
        assert code.serial == serial
        assert code.template == template.code
        assert (code.class_name, code.lesson, code.date) == (CLASS, LESSON, DATE)
        assert code.n_criteria == (len(CRITERIA) if template.is_per_criterion else 0)
        assert len(code.lesson_key) == 6 and int(code.lesson_key, 16) >= 0
        text = slot_text(page, layout, slot)
        if serial < len(pupils):
            assert (code.student_id, code.student_name) == pupils[serial]
            assert pupils[serial][1] in text
            assert "Name:" not in text
        else:
            assert code.is_spare and code.student_name == ""
            assert "Name:" in text
        assert LESSON in text
        assert INTENTION in text
        for c in CRITERIA:
            assert c in text, f"criterion {c!r} not printed on the {template_name} pass"
        if template_name == "ticks":
            for o in OPTIONS:
                assert o in text
    assert len(keys) == 1  # one lesson: every pass carries the same key
    pdf.close()


def test_markers_keep_clear_of_the_sheet_edge():
    """A skewed sheet in a copier loses its corners: every marker >= 10 mm from the edge."""
    for name in TEMPLATES:
        t = load_template(name)
        for paper in ("a4", "letter"):
            for n in (1, 2, 4):
                layout = sheet_layout(t, paper, n)
                sw, sh = layout.size
                for slot in layout.slots:
                    assert slot.cell.inside(Rect(0, 0, sw, sh)), f"{name} {paper} {n}-up"
                    for r in t.marker_rects():
                        x0, y0 = slot.x + r.x * slot.scale, slot.y + r.y * slot.scale
                        x1, y1 = slot.x + r.right * slot.scale, slot.y + r.bottom * slot.scale
                        assert min(x0, y0, sw - x1, sh - y1) >= 10.0, f"{name} {paper} {n}-up"


# --------------------------------------------------------------------------- roster order


def test_roster_order_left_to_right_top_to_bottom_then_spares(tmp_path, write_roster, run_exitscan):
    pupils = [(f"{100 + i}", n) for i, n in enumerate(UNICODE_NAMES + ("Amy Brown", "Ben Carter"))]
    out = tmp_path / "passes.pdf"
    res = run_exitscan(*generate_args("classic", out), "--roster", write_roster(pupils))
    assert res.code == 0, res.err
    assert "8 passes (6 named, 2 spare) on 2 sheets" in res.out  # default spares fill the last sheet

    template = load_template("classic")
    layout = sheet_layout(template, "a4", 4)
    pdf = pdfium.PdfDocument(out)
    assert len(pdf) == 2
    for sheet in range(2):
        page = pdf[sheet]
        gray = render_gray(page)
        serials = [sheet * 4 + i for i in range(4)]
        found = check_markers(gray, layout, template, serials)
        # Reading order from where the passes really are (their top-left markers), not the layout.
        tl = [found[marker_ids(s)[0]][0] for s in serials]
        assert tl[0][0] < tl[1][0] and abs(tl[0][1] - tl[1][1]) < 2  # 0 | 1 side by side
        assert tl[2][0] < tl[3][0] and abs(tl[2][1] - tl[3][1]) < 2  # 2 | 3 side by side
        assert tl[2][1] > tl[0][1] + 50 * PX_PER_MM  # second row below the first
        for slot, serial in zip(layout.slots, serials):
            code = read_qr(gray, slot, template)
            assert code.serial == serial
            text = slot_text(page, layout, slot)
            if serial < len(pupils):
                assert (code.student_id, code.student_name) == pupils[serial]
                assert pupils[serial][1] in text and "Name:" not in text
            else:
                assert code.student_id == "" and code.student_name == "" and code.is_spare
                assert "Name:" in text
                assert not any(n in text for _, n in pupils)
    pdf.close()


@pytest.mark.parametrize(
    ("n_pupils", "per_page", "spares", "expected"),
    [
        (5, 4, None, 8),  # fill the last sheet
        (8, 4, None, 8),  # already full: no spares
        (5, 2, None, 6),
        (5, 1, None, 5),
        (0, 4, None, 32),  # no roster: 30 spares, rounded up to a full sheet
        (0, 1, None, 30),
        (5, 4, 0, 5),
        (5, 4, 7, 12),
    ],
)
def test_spares_default_fills_the_last_sheet(n_pupils, per_page, spares, expected):
    t = load_template("classic")
    pupils = [Pupil(str(i), f"Pupil {i}") for i in range(n_pupils)] or None
    passes = plan_passes(t, Lesson(lesson="x"), pupils, spares, per_page)
    assert len(passes) == expected
    assert [p.code.serial for p in passes] == list(range(expected))
    assert [p.code.student_id for p in passes[:n_pupils]] == [str(i) for i in range(n_pupils)]
    assert all(p.is_spare and p.name == "" for p in passes[n_pupils:])


# --------------------------------------------------------------------------- the command line


def first_code(out: Path, template: Template, paper: str = "a4", per_page: int = 4) -> tuple[payload.PassCode, str]:
    pdf = pdfium.PdfDocument(out)
    layout = sheet_layout(template, paper, per_page)
    gray = render_gray(pdf[0])
    code = read_qr(gray, layout.slots[0], template)
    text = slot_text(pdf[0], layout, layout.slots[0])
    pdf.close()
    return code, text


def test_generate_with_only_out(tmp_path, run_exitscan):
    out = tmp_path / "passes.pdf"
    res = run_exitscan("generate", "--out", out)
    assert res.code == 0, res.err
    assert "32 passes (0 named, 32 spare) on 8 sheets of A4, template classic" in res.out
    assert len(pdfium.PdfDocument(out)) == 8
    code, text = first_code(out, load_template("classic"))
    assert code.is_spare and code.template == "C"
    assert code.date == dt.date.today().isoformat()
    assert code.lesson and code.lesson in text
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left beside it


def test_console_script(tmp_path):
    """The installed ``exitscan`` script itself: success, and a bad roster's exit code."""
    exe = Path(sys.executable).parent / "exitscan"
    out = tmp_path / "p.pdf"
    ok = subprocess.run([exe, "generate", "--spares", "1", "--per-page", "1", "--out", out],
                        capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    assert out.stat().st_size > 1000
    bad = tmp_path / "bad.csv"
    bad.write_text("id,first\n1,Ann\n", encoding="utf-8")
    fail = subprocess.run([exe, "generate", "--roster", bad, "--out", tmp_path / "q.pdf"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert fail.returncode == 3
    assert "bad.csv line 1" in fail.stderr and "Traceback" not in fail.stderr
    assert not (tmp_path / "q.pdf").exists()


def test_lesson_file_and_options_that_override_it(tmp_path, run_exitscan):
    lesson = tmp_path / "lesson.toml"
    lesson.write_text(
        'class = "P4 Blue"\n'
        'lesson = "Fractions of amounts"\n'
        "date = 2026-11-24\n"
        'intention = "To find a fraction of an amount"\n'
        'criteria = ["I can find a half", "I can find a quarter"]\n',
        encoding="utf-8",
    )
    out = tmp_path / "a.pdf"
    assert run_exitscan("generate", "--lesson-file", lesson, "--spares", "1", "--out", out).code == 0
    classic = load_template("classic")
    code, text = first_code(out, classic)
    assert (code.class_name, code.lesson, code.date) == ("P4 Blue", "Fractions of amounts", "2026-11-24")
    for s in ("To find a fraction of an amount", "I can find a half", "I can find a quarter", "Class P4 Blue"):
        assert s in text

    out2 = tmp_path / "b.pdf"
    res = run_exitscan("generate", "--lesson-file", lesson, "--class", "P4 Red", "--lesson", "Halves",
                       "--criterion", "I can share equally", "--spares", "1", "--out", out2)
    assert res.code == 0, res.err
    code2, text2 = first_code(out2, classic)
    assert (code2.class_name, code2.lesson, code2.date) == ("P4 Red", "Halves", "2026-11-24")
    assert "I can share equally" in text2 and "I can find a quarter" not in text2
    assert "To find a fraction of an amount" in text2  # not overridden: kept from the file
    assert code2.lesson_key != code.lesson_key


def test_excel_semicolon_roster_with_bom(tmp_path, run_exitscan):
    roster = tmp_path / "class list.csv"
    roster.write_bytes(
        "\ufeffID;Name;Group\r\n7;Siobhán Ní Bhriain;A\r\n8;Smith, Jamie-Lee;B\r\n".encode("utf-8")
    )
    out = tmp_path / "passes.pdf"
    res = run_exitscan("generate", "--roster", roster, "--per-page", "2", "--out", out)
    assert res.code == 0, res.err
    assert "2 passes (2 named, 0 spare)" in res.out
    code, text = first_code(out, load_template("classic"), per_page=2)
    assert (code.student_id, code.student_name) == ("7", "Siobhán Ní Bhriain")
    assert "Siobhán Ní Bhriain" in text


# Each bad input: (files to write, extra args, fragments the message must contain).
# The roster is written as bytes so encodings and BOMs are exactly what a user's file holds.
BAD_INPUTS = {
    "missing name column": ({"roster.csv": b"id,first_name\n1,Ann\n"}, ["--roster", "roster.csv"],
                            ["roster.csv line 1", "'name'"]),
    "extra values": ({"roster.csv": b"id,name\n1,Ann\n2,Smith, Jamie\n"}, ["--roster", "roster.csv"],
                     ["roster.csv line 3", "3 values", "2 columns", "double quotes"]),
    "missing values": ({"roster.csv": b"id,name,group\n1,Ann,A\n2,Bob\n"}, ["--roster", "roster.csv"],
                       ["roster.csv line 3", "2 values", "3 columns"]),
    "duplicate ids": ({"roster.csv": b"id,name\n1,Ann\n2,Bob\n1,Cat\n"}, ["--roster", "roster.csv"],
                      ["roster.csv line 4", "'1'", "line 2"]),
    "empty roster": ({"roster.csv": b""}, ["--roster", "roster.csv"], ["roster.csv", "empty"]),
    "header-only roster": ({"roster.csv": b"id,name\n"}, ["--roster", "roster.csv"], ["roster.csv", "no pupils"]),
    "latin-1 roster": ({"roster.csv": "id,name\n1,Ann\n2,Siobhán\n".encode("latin-1")}, ["--roster", "roster.csv"],
                       ["roster.csv line 3", "not UTF-8", "CSV UTF-8"]),
    "missing roster": ({}, ["--roster", "nosuch.csv"], ["nosuch.csv", "not found"]),
    "name too long": ({"roster.csv": ("id,name\n1," + "Maximiliana Wolfeschlegelsteinhausenbergerdorff " * 3 + "\n").encode()},
                      ["--roster", "roster.csv"], ["the pupil's name", "too long", "room for about", "95 mm"]),
    "lesson too long": ({}, ["--lesson", "Writing a persuasive letter to the council about the playground " * 2],
                        ["the lesson title", "too long", "room for about"]),
    "criterion too long": ({}, ["--template", "criteria", "--criterion", "I can " + "use interesting adjectives " * 5],
                           ["success criterion 1", "too long", "room for about"]),
    "unbalanced quote": ({"roster.csv": b'id,name\n1,"Ann\n2,Bob\n'}, ["--roster", "roster.csv"],
                         ["roster.csv line 2", "double quote"]),
    "intention and criteria too long on ticks": (
        {}, ["--template", "ticks", "--next-step-option", "Practise", "--intention", "To write a persuasive letter " * 3,
             "--criterion", "I can use rhetorical questions to persuade my reader", "--criterion", "I can use facts " * 4],
        ["the learning intention with the success criteria", "too long for the ticks template", "room for about"]),
    "unknown template": ({}, ["--template", "fancy"], ["unknown template 'fancy'", "classic, criteria, ticks"]),
    "too many criteria": ({}, ["--template", "criteria"] + [a for i in range(5) for a in ("--criterion", f"C{i}")],
                          ["5 success criteria", "at most 4"]),
    "no criteria on criteria": ({}, ["--template", "criteria"], ["at least one success criterion"]),
    "options without ticks": ({}, ["--template", "classic", "--next-step-option", "Practise"],
                              ["next-step options need the ticks template", "--template ticks"]),
    "too many options": ({}, ["--template", "ticks"] + [a for i in range(7) for a in ("--next-step-option", f"O{i}")],
                         ["7 next-step options", "room for 6"]),
    "bad date": ({}, ["--date", "2026-13-01"], ["--date", "'2026-13-01'", "YYYY-MM-DD"]),
    "bad date in lesson file": ({"lesson.toml": b'lesson = "Maths"\ndate = "23/11/2026"\n'}, ["--lesson-file", "lesson.toml"],
                                ["lesson.toml", "'23/11/2026'", "YYYY-MM-DD"]),
    "bad lesson file": ({"lesson.toml": b'lesson = "Maths\n'}, ["--lesson-file", "lesson.toml"],
                        ["lesson.toml", "line 1"]),
    "unknown lesson-file key": ({"lesson.toml": b'lesson = "Maths"\nteacher = "Ms Ng"\n'}, ["--lesson-file", "lesson.toml"],
                                ["lesson.toml", "unknown key 'teacher'"]),
    "class too long for the QR": ({}, ["--class", "Класс Ивановой Марии Петровны, кабинет 12"],
                                  ["the class", "too long for the pass's QR code", "shorter --class"]),
    "id and class too long for the QR": (
        {"roster.csv": b"id,name\n3f2504e0-4f89-11d3-9a0c-0305e82c3301,Ann Lee\n"},
        ["--roster", "roster.csv", "--class", "Класс Ивановой Марии"],
        ["3f2504e0-4f89-11d3-9a0c-0305e82c3301", "Класс Ивановой Марии", "QR code", "shorter"]),
    "glyphs the font lacks": ({"roster.csv": "id,name\n1,王小明\n".encode()}, ["--roster", "roster.csv"],
                              ["王小明", "cannot print"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_exit_3_clear_message_and_no_pdf(case, tmp_path, run_exitscan, monkeypatch):
    files, args, fragments = BAD_INPUTS[case]
    monkeypatch.chdir(tmp_path)  # the message must name the user's file as given
    for name, data in files.items():
        Path(name).write_bytes(data)
    out = tmp_path / "out" / "passes.pdf"
    out.parent.mkdir()

    res = run_exitscan("generate", *args, "--out", out)
    assert res.code == 3, (res.code, res.err)
    assert res.err.startswith("exitscan: ") and "Traceback" not in res.err
    for f in fragments:
        assert f in res.err, f"{f!r} not in {res.err!r}"
    assert list(out.parent.iterdir()) == []  # no PDF, partial or otherwise

    # A PDF already at --out (last week's passes) is left exactly as it was.
    out.write_bytes(b"%PDF-1.4 last week's passes")
    assert run_exitscan("generate", *args, "--out", out).code == 3
    assert out.read_bytes() == b"%PDF-1.4 last week's passes"
    assert list(out.parent.iterdir()) == [out]


def test_out_in_a_missing_folder_is_an_output_error(tmp_path, run_exitscan):
    res = run_exitscan("generate", "--out", tmp_path / "nope" / "p.pdf")
    assert res.code == 4
    assert "does not exist" in res.err


def test_usage_errors_exit_2(tmp_path, run_exitscan):
    assert run_exitscan("generate").code == 2  # --out is required
    assert run_exitscan("generate", "--per-page", "3", "--out", tmp_path / "p.pdf").code == 2
    assert not (tmp_path / "p.pdf").exists()
