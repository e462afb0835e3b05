"""results.xlsx: the workbook a teacher opens.

Readings are built directly as `PassResult`s (known truth, no scanning), with handwriting-like
crops drawn on grey, shadowed paper. The workbook is read back twice: with openpyxl (sheets,
fills, frozen panes, filters, images) and by a real LibreOffice converting each sheet to CSV
(what a spreadsheet program shows). Faults while writing must leave the previous workbook.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest

from exitscan import workbook
from exitscan.errors import ExitscanError, OutputError
from exitscan.export import write_results_csv
from exitscan.handwriting import CROP_PX_PER_MM
from exitscan.lessons import LessonRecord
from exitscan.payload import PassCode
from exitscan.read import SPARE_REASON, PassResult, Problem

LESSON_KEY = "a1b2c3"
FORMULA_NAMES = ('=HYPERLINK("http://example.com","click")', "+44 1234", "-1+2", "@SUM(1,2)")


def draw_crop(path: Path, text: str, seed: int, size_mm=(120, 24)) -> str:
    """A handwriting crop like the reader cuts (at CROP_PX_PER_MM): grey paper, a shadow, noise, ruled lines."""
    rng = np.random.default_rng(seed)
    w, h = round(size_mm[0] * CROP_PX_PER_MM), round(size_mm[1] * CROP_PX_PER_MM)
    paper = np.linspace(150 + seed % 60, 225, w, dtype=np.float32)[None, :].repeat(h, 0)
    img = paper + rng.normal(0, 6, (h, w)).astype(np.float32)
    for y in (h // 2, h - 12):
        img[y : y + 2, :] -= 60
    canvas = np.full((h, w), 255, np.uint8)
    font = (cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SIMPLEX)[seed % 2]
    cv2.putText(canvas, text, (20, h // 2 - 10), font, 0.2 * CROP_PX_PER_MM, 0, 3, cv2.LINE_AA)
    img = np.minimum(img, img * canvas / 255.0 + 40 * (canvas < 128))
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", img.clip(0, 255).astype(np.uint8))
    assert ok
    path.write_bytes(buf.tobytes())
    return path.name


def make_pass(
    name: str | None,
    rating: str,
    *,
    pid: str = "",
    source: str = "scan.pdf",
    page: int = 1,
    position: int = 1,
    status: str = "ok",
    reason: str = "",
    template: str = "C",
    rows: tuple[str, ...] = (),
    ticks: tuple[int, ...] = (),
    tick_texts: tuple[str, ...] = (),
    lesson_key: str = LESSON_KEY,
    serial: int = 0,
    spare: bool = False,
    unreadable_code: bool = False,
    confidence: float = 1.0,
    lesson: str = "Writing: describing a character",
    **ocr: object,
) -> PassResult:
    code = None
    if not unreadable_code:
        code = PassCode(
            template=template,
            serial=serial,
            lesson_key=lesson_key,
            student_id="" if spare else (pid or f"id-{name}"),
            student_name="" if spare else (name or ""),
            class_name="P3B",
            date="2026-11-23",
            n_criteria=len(rows),
            lesson=lesson,
        )
    return PassResult(
        source=source,
        page=page,
        position=position,
        code=code,
        template={"C": "classic", "R": "criteria", "T": "ticks"}[template],
        rating=rating,
        row_ratings=rows,
        ticks=ticks,
        confidence=confidence,
        status=status,
        reason=reason,
        residual_mm=0.2,
        corners_found=4,
        tick_texts=tick_texts,
        **ocr,
    )


ROSTER = {
    "p1": "Siobhán Ní Bhriain",
    "p2": "Zoë O'Connor",
    "p3": "Łukasz Dąbrowski",
    "p4": "Amara Okafor",
    "p5": "Smith, Jamie-Lee",
    "p6": "Dominik Dvořák",
    "p7": "Chloé Lefèvre",  # absent: no pass
}
RECORD = LessonRecord(
    key=LESSON_KEY,
    template="classic",
    class_name="P3B",
    lesson="Writing: describing a character",
    date="2026-11-23",
    intention="",
    criteria=(),
    next_step_options=(),
    pupils=ROSTER,
)


def find_lesson(key: str):
    return RECORD if key == LESSON_KEY else None


@pytest.fixture
def batch(tmp_path):
    """A class's batch in stack order: every rating, a review, a spare, an unreadable code."""
    passes = [
        make_pass("Zoë O'Connor", "red", pid="p2", page=1, position=1, confidence=0.9,
                  next_step_written=True, next_step_text="I will use adjectives 0", next_step_confidence=0.91),
        make_pass("Siobhán Ní Bhriain", "green", pid="p1", page=1, position=2, next_step_written=False),
        make_pass("Łukasz Dąbrowski", "orange", pid="p3", page=1, position=3, status="review",
                  reason="red scribbled out and orange marked: check the reading", confidence=0.5),
        make_pass("Amara Okafor", "none", pid="p4", page=1, position=4, status="review", reason="nothing marked"),
        make_pass("Smith, Jamie-Lee", "orange", pid="p5", page=2, position=1,
                  next_step_written=True, next_step_text="I wil use ajectves 4", next_step_confidence=0.3),
        make_pass("Dominik Dvořák", "multiple", pid="p6", page=2, position=2, status="review",
                  reason="more than one face marked (green and red)", confidence=0.8),
        make_pass(None, "green", spare=True, serial=7, page=3, position=1, status="review", reason=SPARE_REASON),
        make_pass(None, "red", unreadable_code=True, page=3, position=2, status="review",
                  reason="the pass code (QR) could not be read: whose pass is it?"),
    ]
    base = tmp_path / "out"
    images = {}
    for i, p in enumerate(passes):
        images[i] = "crops/" + draw_crop(base / "crops" / f"crop{i}.png", f"I will use adjectives {i}", i)
    # The write-in names of the spare and of the pass whose code was unreadable.
    from exitscan.export import crop_name

    for p in passes[6:]:
        draw_crop(base / "crops" / crop_name(p, "name"), "Nadia", 99, size_mm=(95, 7))
    problems = [
        Problem("scan.pdf", 4, "blank", "scan.pdf page 4: blank page (a duplex back?)"),
        Problem("notes.docx", 0, "unsupported", "notes.docx: not a scan (Word file)"),
    ]
    return passes, problems, images, base


def write(batch, **kw) -> Path:
    passes, problems, images, base = batch
    path = base / "results.xlsx"
    workbook.write_workbook(path, passes, problems, images, base, pages=4, find_lesson=kw.pop("find_lesson", find_lesson), **kw)
    return path


def column(ws, header: str, row: int = 1) -> int:
    """1-based index of the column with this header."""
    for cell in ws[row]:
        if cell.value == header:
            return cell.column
    raise AssertionError(f"no column {header!r} in {[c.value for c in ws[row]]}")


def hand_col(ws) -> int:
    return column(ws, "Next step (as written)")


def fill(cell) -> str:
    return (cell.fill.fgColor.rgb or "")[-6:].upper()


# --------------------------------------------------------------------------- read back: openpyxl


def test_sheets_fills_panes_filters_and_images(batch):
    path = write(batch)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == list(workbook.SHEETS)
    assert wb.active.title == "Next lesson"

    ws = wb["Results"]
    assert ws.freeze_panes == "B2"
    assert ws.auto_filter.ref and ws.auto_filter.ref.startswith("A1:")
    names = [ws.cell(r, 1).value for r in range(2, ws.max_row + 1)]
    # Sorted by name as a person reads it (Łukasz under L), then passes with no known pupil.
    assert names[:6] == ["Amara Okafor", "Dominik Dvořák", "Łukasz Dąbrowski", "Siobhán Ní Bhriain", "Smith, Jamie-Lee", "Zoë O'Connor"]
    assert names[6].startswith("Spare pass 8") and names[7].startswith("Unknown pupil")
    face, check, why = column(ws, "Face circled"), column(ws, "Check?"), column(ws, "Why to check")
    by_name = {ws.cell(r, 1).value: r for r in range(2, ws.max_row + 1)}
    zoe = by_name["Zoë O'Connor"]
    assert ws.cell(zoe, face).value == "Red: Not yet"  # the word is there in black and white
    assert fill(ws.cell(zoe, face)) == workbook.RATING_COLOURS["red"][0][1:]
    assert fill(ws.cell(by_name["Siobhán Ní Bhriain"], face)) == workbook.RATING_COLOURS["green"][0][1:]
    assert ws.cell(by_name["Smith, Jamie-Lee"], face).value == "Orange: Almost"
    assert ws.cell(zoe, check).value == "OK" and fill(ws.cell(zoe, 1)) in ("", "000000")
    luk = by_name["Łukasz Dąbrowski"]
    assert ws.cell(luk, check).value == "Check"
    assert "scribbled out" in ws.cell(luk, why).value
    assert fill(ws.cell(luk, 1)) == workbook.REVIEW_FILL[1:]  # the whole row stands out
    assert ws.cell(zoe, column(ws, "Sure (%)")).number_format == "0%"
    # The OCR draft beside the picture: marked when the engine was unsure, or said to be empty.
    draft = column(ws, "Next step (typed by the computer: a draft)")
    assert draft == hand_col(ws) + 1
    assert ws.cell(zoe, draft).value == "I will use adjectives 0"
    assert ws.cell(by_name["Smith, Jamie-Lee"], draft).value == "I wil use ajectves 4 (unsure)"
    assert ws.cell(by_name["Siobhán Ní Bhriain"], draft).value == "(nothing written)"
    assert ws.column_dimensions["A"].width >= 16
    # One readable image per pass, in the handwriting column, anchored to its row.
    hand = column(ws, "Next step (as written)")
    imgs = ws._images
    assert len(imgs) == 8
    anchors = sorted((im.anchor._from.row + 1, im.anchor._from.col + 1) for im in imgs)
    assert anchors == [(r, hand) for r in range(2, 10)]
    for im in imgs:
        a = im.anchor  # two cells: the picture sits inside its own cell
        assert (a._from.row, a._from.col) == (a.to.row, a.to.col)
        assert 380 <= (a.to.colOff - a._from.colOff) / 9525 <= 460, "120 mm of writing shown ~3.5 px/mm"
        assert im.width == 720, "stored at 6 px/mm: sharp when zoomed or printed"
    assert ws.row_dimensions[zoe].height >= 0.75 * 84  # the row holds its picture

    ws = wb["Review"]
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref
    pupil = column(ws, "Pupil")
    order = [ws.cell(r, pupil).value for r in range(2, ws.max_row + 1)]
    # The order of the scanned stack, so the teacher can leaf through the paper alongside.
    assert order[:3] == ["Łukasz Dąbrowski", "Amara Okafor", "Dominik Dvořák"]
    assert len(order) == 5
    assert [ws.cell(r, column(ws, "Page")).value for r in range(2, 7)] == [1, 1, 2, 3, 3]
    # The spare and the unreadable pass show the name written on them, beside the next step.
    name_col = column(ws, "Name written on the pass")
    assert sum(1 for im in ws._images if im.anchor._from.col + 1 == name_col) == 2

    ws = wb["Problems"]
    assert [ws.cell(r, 3).value for r in (2, 3)] == ["Blank page", "Not a scan"]
    assert ws.cell(2, 2).value == 4 and ws.cell(2, 4).value.startswith("scan.pdf page 4")

    with zipfile.ZipFile(path) as z:
        assert any(n.startswith("xl/charts/chart") for n in z.namelist()), "Summary has its chart"
        media = [n for n in z.namelist() if n.startswith("xl/media/")]
    assert len(media) == 8 + 1  # each crop stored once, though shown on several sheets


def _next_lesson_groups(ws) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    current = None
    for r in range(4, ws.max_row + 1):
        v = ws.cell(r, 1).value
        if not v:
            continue
        head = next((g for g in ("Look at these first", "Support group", "Check in", "Extension", "No pass") if v.startswith(g)), None)
        if head:
            current = head
            groups[current] = []
        elif current and ws.cell(r, 1).font.size != 13:  # not the next lesson's heading
            groups[current].append(v)
    return groups


def test_next_lesson_groups_pupils_and_lists_the_absent(batch):
    wb = openpyxl.load_workbook(write(batch))
    ws = wb["Next lesson"]
    assert ws["A1"].value.startswith("Next lesson")
    assert "8 passes read from 4 pages" in ws["A2"].value
    assert "Writing: describing a character · P3B · Mon 23 Nov 2026" in [ws.cell(r, 1).value for r in range(1, 8)]
    g = _next_lesson_groups(ws)
    assert list(g) == ["Look at these first", "Support group", "Check in", "Extension", "No pass"]
    assert g["Support group"] == ["Zoë O'Connor"]
    assert g["Check in"] == ["Smith, Jamie-Lee"]
    assert g["Extension"] == ["Siobhán Ní Bhriain"]
    assert g["Look at these first"][:3] == ["Amara Okafor", "Dominik Dvořák", "Łukasz Dąbrowski"]
    assert len(g["Look at these first"]) == 5  # with the spare and the unreadable pass of this lesson
    assert g["No pass"] == ["Chloé Lefèvre"]  # on the roster, no pass scanned
    heads = [ws.cell(r, 1) for r in range(1, ws.max_row + 1) if (ws.cell(r, 1).value or "").startswith("Support group")]
    assert fill(heads[0]) == workbook.RATING_COLOURS["red"][0][1:]


def test_without_a_class_list_no_one_is_called_absent(batch):
    wb = openpyxl.load_workbook(write(batch, find_lesson=lambda key: None))
    assert "No pass" not in _next_lesson_groups(wb["Next lesson"])
    # Without this computer's record, the title is what the pass code holds, marked when cut.
    assert wb["Results"]["A1"].value == "Pupil"


def test_summary_counts_per_lesson_and_per_criterion(tmp_path):
    rows = [("green", "red", "orange"), ("green", "green", "red"), ("orange", "red", "none")]
    passes = [
        make_pass(n, "red", pid=f"p{i}", template="R", rows=r, position=i + 1)
        for i, (n, r) in enumerate(zip(("Ann", "Bea", "Cal"), rows))
    ]
    passes.append(make_pass("Dan", "green", pid="p9", template="T", ticks=(0, 2), tick_texts=("Use more adjectives", "Check capitals", "Read it aloud"), lesson_key="ffffff"))
    path = tmp_path / "r.xlsx"
    workbook.write_workbook(path, passes, [], {}, tmp_path, find_lesson=lambda k: None)
    ws = openpyxl.load_workbook(path)["Summary"]
    values = [[c.value for c in row] for row in ws.iter_rows()]
    lesson_rows = [v for v in values if v[0] and str(v[0]).startswith("Writing")]
    assert lesson_rows[0][3:10] == [3, 0, 0, 3, 0, 0, 0]  # 3 passes, all red overall, none to check
    crit = {v[0]: v[3:9] for v in values if v[0] and str(v[0]).startswith("Criterion")}
    assert crit["Criterion 1"] == [3, 2, 1, 0, 0, 0]
    assert crit["Criterion 2"] == [3, 1, 0, 2, 0, 0]
    assert crit["Criterion 3"] == [3, 0, 1, 1, 1, 0]
    ticked = {v[0]: (v[3], v[4]) for v in values if v[0] in ("Use more adjectives", "Read it aloud")}
    assert ticked == {"Use more adjectives": (1, "Dan"), "Read it aloud": (1, "Dan")}


# --------------------------------------------------------------------------- never a formula


def test_roster_and_ocr_text_that_looks_like_a_formula_stays_text(batch, tmp_path):
    _, problems, _, base = batch
    odd = [
        make_pass(n, "red", pid=f"f{i}", position=i + 1, next_step_text=t, next_step_written=True, next_step_confidence=0.9)
        for i, (n, t) in enumerate(zip(FORMULA_NAMES, ("=1+1", "+ more adjectives", "-capital letters", "@home")))
    ]
    path = base / "results.xlsx"
    workbook.write_workbook(path, odd, problems, {}, base, find_lesson=lambda k: None)
    ws = openpyxl.load_workbook(path)["Results"]
    cells = {ws.cell(r, 1).value: ws.cell(r, 1) for r in range(2, ws.max_row + 1)}
    assert set(cells) == set(FORMULA_NAMES)
    for cell in cells.values():
        assert cell.data_type == "s"
        assert cell.quotePrefix, "kept text even when the teacher edits the cell"
    col = column(ws, "Next step (typed by the computer: a draft)")
    drafts = {ws.cell(r, col).value for r in range(2, ws.max_row + 1)}
    assert drafts == {"=1+1", "+ more adjectives", "-capital letters", "@home"}
    for r in range(2, ws.max_row + 1):
        assert ws.cell(r, col).data_type == "s" and ws.cell(r, col).quotePrefix
    with zipfile.ZipFile(path) as z:
        sheets = "".join(z.read(n).decode() for n in z.namelist() if n.startswith("xl/worksheets/sheet"))
    assert "<f>" not in sheets, "no formula anywhere in the workbook"
    # results.csv: the same names get the apostrophe guard.
    write_results_csv(tmp_path / "results.csv", odd, {})
    rows = list(csv.DictReader(io.StringIO((tmp_path / "results.csv").read_text(encoding="utf-8-sig"))))
    assert {r["student_name"] for r in rows} == {"'" + n for n in FORMULA_NAMES}


# --------------------------------------------------------------------------- a real LibreOffice


def _soffice() -> str:
    exe = shutil.which("soffice") or shutil.which("libreoffice")
    if exe is None:
        # Never skipped: the test set-up installs it, and a missing one must be seen.
        pytest.fail("LibreOffice is not installed: run scripts/install.sh --test")
    return exe


def _libreoffice_csv(path: Path, tmp_path: Path) -> dict[str, list[list[str]]]:
    """Every sheet as LibreOffice shows it (values, as formatted), through its CSV export."""
    out = tmp_path / "lo-csv"
    profile = tmp_path / "lo-profile"  # a private profile: runs in parallel never share a lock
    # Filter options: comma, double quote, UTF-8, from line 1, ..., values as shown, all sheets (-1).
    filt = "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true,false,false,-1"
    r = subprocess.run(
        [_soffice(), f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore", "--convert-to", filt, "--outdir", str(out), str(path)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    sheets = {}
    for name in workbook.SHEETS:
        f = out / f"{path.stem}-{name}.csv"
        assert f.exists(), f"LibreOffice did not export sheet {name}: {r.stdout} {r.stderr}"
        sheets[name] = list(csv.reader(io.StringIO(f.read_text(encoding="utf-8"))))
    return sheets


def test_libreoffice_opens_it_and_shows_the_values(batch, tmp_path):
    passes, problems, images, base = batch
    odd = [make_pass(n, "orange", pid=f"f{i}", position=i + 1, lesson_key="eeeeee", lesson="Science: magnets") for i, n in enumerate(FORMULA_NAMES)]
    path = base / "results.xlsx"
    workbook.write_workbook(path, passes + odd, problems, images, base, pages=5, find_lesson=find_lesson)
    sheets = _libreoffice_csv(path, tmp_path)

    res = sheets["Results"]
    head = res[0]
    rows = {r[0]: dict(zip(head, r)) for r in res[1:]}
    assert rows["Zoë O'Connor"]["Face circled"] == "Red: Not yet"
    assert rows["Zoë O'Connor"]["Sure (%)"] == "90%"
    assert rows["Zoë O'Connor"]["Date"] == "Mon 23 Nov 2026"
    assert rows["Łukasz Dąbrowski"]["Check?"] == "Check"
    assert rows["Smith, Jamie-Lee"]["Face circled"] == "Orange: Almost"
    # A formula would show its result ("click", 3, 1...): LibreOffice shows the text as typed.
    for n in FORMULA_NAMES:
        assert n in rows, f"{n!r} became {[k for k in rows if k not in ROSTER.values()]}"
    nl = [r[0] for r in sheets["Next lesson"] if r and r[0]]
    assert nl[0] == "Next lesson: who needs what"
    i = nl.index("Support group: Not yet (red): 1 pupil, need support")
    assert nl[i + 1] == "Zoë O'Connor"
    assert any(v.startswith("No pass: 1 pupil") for v in nl) and "Chloé Lefèvre" in nl
    assert FORMULA_NAMES[0] in nl
    review = sheets["Review"]
    assert [r[4] for r in review[1:4]] == ["Łukasz Dąbrowski", "Amara Okafor", "Dominik Dvořák"]
    summary = {r[0]: r for r in sheets["Summary"] if r}
    # Two lessons in the batch: the pass whose code was unreadable is not put in either.
    assert summary["Writing: describing a character"][3:11] == ["7", "2", "2", "1", "1", "1", "4", "1"]
    assert summary["Science: magnets"][3:11] == ["4", "0", "4", "0", "0", "0", "0", "—"]
    assert summary["Lesson not known (pass code unreadable)"][3:10] == ["1", "0", "0", "1", "0", "0", "1"]
    assert sheets["Problems"][1][:3] == ["scan.pdf", "4", "Blank page"]


# --------------------------------------------------------------------------- atomic, faults


def test_a_fault_while_building_leaves_the_previous_workbook(batch, monkeypatch):
    path = write(batch)
    before = path.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("simulated fault half-way through the workbook")

    monkeypatch.setattr(workbook, "_summary_sheet", boom)
    with pytest.raises(RuntimeError):
        write(batch)
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".part")]


def test_a_fault_while_saving_leaves_the_previous_workbook(batch, monkeypatch):
    path = write(batch)
    before = path.read_bytes()
    import os

    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OutputError, match="results.xlsx"):
        write(batch)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".part")]


def test_process_writes_the_workbook_last_and_a_workbook_bug_keeps_the_csvs(tmp_path, monkeypatch, run_exitscan):
    scans = tmp_path / "scans"
    scans.mkdir()
    cv2.imwrite(str(scans / "blank.png"), np.full((800, 600), 255, np.uint8))
    out = tmp_path / "out"
    r = run_exitscan("process", scans, "--out", out)
    assert r.out.strip().splitlines()[-1] == f"Results: {out / 'results.xlsx'}"
    before = (out / "results.xlsx").read_bytes()
    assert openpyxl.load_workbook(out / "results.xlsx")["Problems"]["C2"].value == "Blank page"

    from exitscan.pipeline import ProcessOptions, run_batch

    monkeypatch.setattr(workbook, "_results_sheet", lambda *a: 1 / 0)
    with pytest.raises(ExitscanError, match="results.csv and problems.csv are complete"):
        run_batch(ProcessOptions((scans,), out, jobs=1))
    assert (out / "results.xlsx").read_bytes() == before
    assert (out / "problems.csv").exists()


def test_a_missing_or_broken_crop_is_said_not_fatal(batch):
    _, _, images, base = batch
    (base / images[0]).unlink()
    (base / images[1]).write_bytes(b"not a png")
    ws = openpyxl.load_workbook(write(batch))["Results"]
    hand = column(ws, "Next step (as written)")
    shown = [ws.cell(r, hand).value for r in range(2, ws.max_row + 1)]
    assert shown.count("(no image)") == 2
    assert len(ws._images) == 6


def test_shown_crop_has_white_paper_and_dark_ink(tmp_path):
    f = tmp_path / "c.png"
    draw_crop(f, "Use full stops", 3)
    s = workbook.shown_image(f)
    img = cv2.imdecode(np.frombuffer(s.png, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert (s.width, s.height) == (720, 144)  # 6 px/mm of a 120 x 24 mm writing area
    assert np.median(img) == 255, "grey, shadowed paper shows white"
    assert img.min() < 60, "the writing stays dark"


# --------------------------------------------------------------------------- a big class


def test_500_passes_are_written_quickly_and_stay_small(tmp_path):
    base = tmp_path / "big"
    passes, images = [], {}
    ratings = ("green", "orange", "red", "green", "none")
    for i in range(500):
        status = "review" if i % 9 == 0 else "ok"
        passes.append(
            make_pass(f"Pupil {i:03d}", ratings[i % 5], pid=f"p{i}", lesson_key=f"{i % 4:06d}", page=i // 4 + 1,
                      position=i % 4 + 1, status=status, reason="nothing marked" if status == "review" else "")
        )
        images[i] = "crops/" + draw_crop(base / "crops" / f"c{i}.png", f"My next step is {i}", i)
    path = base / "results.xlsx"
    start = time.perf_counter()
    workbook.write_workbook(path, passes, [], images, base, pages=125, find_lesson=lambda k: None)
    seconds = time.perf_counter() - start
    size = path.stat().st_size
    print(f"\n500 passes: results.xlsx written in {seconds:.2f} s, {size / 1e6:.1f} MB")
    assert seconds < 10
    assert size < 15e6, "crops are downscaled and cleaned, not copied"
    wb = openpyxl.load_workbook(path, read_only=True)
    assert wb["Results"].max_row == 501
