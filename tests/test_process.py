"""`exitscan process` as a batch: every page accounted for, problems named, outputs safe.

Pages are real passes from `exitscan generate`, rendered with pdfium; marks are the scan
simulator's business (tests/test_read_marks.py). Here: the batch's contract.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest

from exitscan.errors import ExitCode
from exitscan.export import safe_cell, safe_stem
from exitscan.pipeline import ProcessOptions, run_batch


@pytest.fixture(autouse=True)
def _private_lesson_records(tmp_path, monkeypatch):
    monkeypatch.setenv("EXITSCAN_DATA", str(tmp_path / "exitscan-data"))


def _render(pdf: Path, dpi: int = 150) -> list[np.ndarray]:
    doc = pdfium.PdfDocument(str(pdf))
    try:
        pages = []
        for i in range(len(doc)):
            img = doc[i].render(scale=dpi / 72, grayscale=True).to_numpy()
            pages.append(img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
        return pages
    finally:
        doc.close()


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


@pytest.fixture
def passes_pdf(tmp_path, write_roster, run_exitscan) -> Path:
    roster = write_roster([("1042", "Siobhán Ní Bhriain"), ("1043", "Zoë O'Connor"), ("1044", "=HYPERLINK(1)")])
    out = tmp_path / "passes.pdf"
    r = run_exitscan("generate", "--roster", roster, "--class", "P3B", "--lesson", "Fractions", "--date", "2026-11-23", "--out", out)
    assert r.code == 0, r.err
    return out


def test_every_page_is_accounted_for_and_problems_are_named(tmp_path, passes_pdf, run_exitscan):
    scans = tmp_path / "scans"
    (scans / "sub").mkdir(parents=True)
    page = _render(passes_pdf)[0]
    rotated = cv2.rotate(page, cv2.ROTATE_180)  # a stack fed upside down
    assert cv2.imwrite(str(scans / "scan1.png"), rotated)
    blank = np.full((1754, 1240), 250, np.uint8)
    cv2.imwrite(str(scans / "sub" / "scan2.jpg"), blank)
    text_page = np.full((1754, 1240), 255, np.uint8)
    for y in range(200, 1500, 60):
        cv2.putText(text_page, "Dear parents, the school trip is on Friday", (100, y), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 0, 2)
    cv2.imwrite(str(scans / "sub" / "scan10.png"), text_page)
    (scans / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 100)
    (scans / "broken.pdf").write_bytes(passes_pdf.read_bytes()[:300])
    (scans / "empty.jpg").write_bytes(b"")
    out = tmp_path / "results"

    r = run_exitscan("process", scans, "--out", out, "--jobs", "2")

    assert r.code == ExitCode.OK, r.err
    results, problems = _rows(out / "results.csv"), _rows(out / "problems.csv")
    assert sorted(x["student_id"] for x in results) == ["", "1042", "1043", "1044"]  # + 1 spare
    assert {x["source"] for x in results} == {"scan1.png"}
    kinds = {(p["source"], p["kind"]) for p in problems}
    assert ("sub/scan2.jpg", "blank") in kinds
    assert ("sub/scan10.png", "not-a-pass") in kinds
    assert ("Thumbs.db", "unsupported") in kinds
    assert ("broken.pdf", "unreadable") in kinds
    assert ("empty.jpg", "unreadable") in kinds
    # Every input file shows up in one of the two files.
    files = {"scan1.png", "sub/scan2.jpg", "sub/scan10.png", "Thumbs.db", "broken.pdf", "empty.jpg"}
    assert {x["source"] for x in results} | {p["source"] for p in problems} == files
    # Unmarked passes are never guessed: rating none, sent to review.
    assert all(x["rating"] == "none" and x["status"] == "review" for x in results)
    # 3 pages in the readable files; the 3 files that could not be opened are named too.
    assert r.out.startswith("3 pages: 4 passes read, 4 to review, 2 unreadable, 1 file not a scan")


def test_names_are_text_not_formulas_and_crop_names_are_safe(tmp_path, passes_pdf):
    scans = tmp_path / "scans"
    scans.mkdir()
    cv2.imwrite(str(scans / "p.png"), _render(passes_pdf)[0])
    out = tmp_path / "out"
    batch = run_batch(ProcessOptions((scans,), out, jobs=1))
    rows = _rows(out / "results.csv")
    names = {x["student_id"]: x["student_name"] for x in rows}
    assert names["1044"] == "'=HYPERLINK(1)"
    assert names["1042"] == "Siobhán Ní Bhriain"
    for x in rows:
        p = out / x["next_step_image"]
        assert p.is_file() and p.resolve().parent == (out / "crops").resolve()
        assert cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) is not None
    assert len({x["next_step_image"] for x in rows}) == len(rows) == len(batch.passes)


def test_the_same_pass_twice_is_one_result_and_a_duplicate(tmp_path, passes_pdf):
    scans = tmp_path / "scans"
    scans.mkdir()
    page = _render(passes_pdf)[0]
    cv2.imwrite(str(scans / "a.png"), page)
    cv2.imwrite(str(scans / "b.jpg"), cv2.rotate(page, cv2.ROTATE_90_CLOCKWISE))
    out = tmp_path / "out"
    run_batch(ProcessOptions((scans,), out, jobs=1))
    results, problems = _rows(out / "results.csv"), _rows(out / "problems.csv")
    assert len(results) == 4
    dups = [p for p in problems if p["kind"] == "duplicate"]
    assert len(dups) == 4 and all(p["source"] == "b.jpg" for p in dups)
    assert "already read (a.png page 1)" in dups[0]["message"]


def test_nothing_readable_exits_5_and_unwritable_output_exits_4(tmp_path, run_exitscan):
    scans = tmp_path / "scans"
    scans.mkdir()
    cv2.imwrite(str(scans / "blank.png"), np.full((800, 600), 255, np.uint8))
    r = run_exitscan("process", scans, "--out", tmp_path / "out")
    assert r.code == ExitCode.NOTHING_READ
    assert "no pass could be read" in r.err
    assert _rows(tmp_path / "out" / "problems.csv")[0]["kind"] == "blank"

    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run_exitscan("process", scans, "--out", blocker / "out")
    assert r.code == ExitCode.OUTPUT
    r = run_exitscan("process", tmp_path / "missing")
    assert r.code == ExitCode.BAD_INPUT and "no such file or folder" in r.err


def test_a_failed_run_leaves_previous_results_intact(tmp_path, passes_pdf, monkeypatch):
    scans = tmp_path / "scans"
    scans.mkdir()
    cv2.imwrite(str(scans / "p.png"), _render(passes_pdf)[0])
    out = tmp_path / "out"
    run_batch(ProcessOptions((scans,), out, jobs=1))
    before = (out / "results.csv").read_bytes()

    from exitscan import pipeline

    def boom(*a, **k):  # simulate a fault while writing the final table
        raise OSError("disk full")

    monkeypatch.setattr(pipeline, "write_problems_csv", boom)
    cv2.imwrite(str(scans / "q.png"), np.full((800, 600), 255, np.uint8))
    with pytest.raises(OSError):
        run_batch(ProcessOptions((scans,), out, jobs=1))
    # results.csv of the failed run may be new, but never half-written; no temp files left.
    assert not list(out.glob(".*.part"))
    assert (out / "results.csv").read_bytes().startswith(before[:20])


def test_a_page_that_crashes_the_reader_is_a_problem_not_a_crash(tmp_path, passes_pdf, monkeypatch):
    scans = tmp_path / "scans"
    scans.mkdir()
    page = _render(passes_pdf)[0]
    cv2.imwrite(str(scans / "a.png"), page)
    cv2.imwrite(str(scans / "b.png"), page)
    from exitscan import pipeline

    real = pipeline.read_page

    def flaky(gray, source, page, debug=False, **kw):
        if source == "a.png":
            raise RuntimeError("simulated fault")
        return real(gray, source, page, debug, **kw)

    monkeypatch.setattr(pipeline, "read_page", flaky)
    out = tmp_path / "out"
    batch = run_batch(ProcessOptions((scans,), out, jobs=1))
    assert len(batch.passes) == 4 and {p.source for p in batch.passes} == {"b.png"}
    problems = _rows(out / "problems.csv")
    assert problems[0]["source"] == "a.png" and "simulated fault" in problems[0]["message"]


def test_debug_pictures_are_written(tmp_path, passes_pdf):
    scans = tmp_path / "scans"
    scans.mkdir()
    cv2.imwrite(str(scans / "p.png"), _render(passes_pdf)[0])
    dbg = tmp_path / "dbg"
    run_batch(ProcessOptions((scans,), tmp_path / "out", jobs=1, debug=dbg))
    pics = list(dbg.glob("*.png"))
    assert len(pics) == 1
    img = cv2.imread(str(pics[0]))
    # Markers found are outlined in green.
    assert ((img[:, :, 1] > 120) & (img[:, :, 0] < 60) & (img[:, :, 2] < 60)).sum() > 100
    # Under the page, one panel per registered pass (4 on this sheet), each about 0.7 x wide.
    assert img.shape[0] > img.shape[1] * (0.7 + 4 * 0.65)


@pytest.mark.parametrize(
    "value, expected",
    [("=1+1", "'=1+1"), ("+44 123", "'+44 123"), ("-x", "'-x"), ("@SUM(A1)", "'@SUM(A1)"), ("Zoë", "Zoë"), ("", "")],
)
def test_safe_cell(value, expected):
    assert safe_cell(value) == expected


@pytest.mark.parametrize("name", ["../../etc/passwd", "..", "a/b\\c", "Siobhán Ní Bhriain", "\x00evil", "CON", "." * 5])
def test_safe_stem_never_escapes_the_folder(name):
    s = safe_stem(name, "1")
    assert "/" not in s and "\\" not in s and not s.startswith(".") and "\x00" not in s and s


def test_titles_and_names_cut_in_the_code_come_back_whole_from_the_lesson_record(
    tmp_path, write_roster, run_exitscan, monkeypatch
):
    name = "Maximiliana Wolfeschlegelstein-Ní Bhriain"
    roster = write_roster([("1042", name)])
    title = "Writing: describing a character with adjectives"
    out = tmp_path / "passes.pdf"
    assert run_exitscan("generate", "--roster", roster, "--lesson", title, "--spares", "0", "--per-page", "1", "--out", out).code == 0
    scans = tmp_path / "scans"
    scans.mkdir()
    cv2.imwrite(str(scans / "p.png"), _render(out)[0])
    batch = run_batch(ProcessOptions((scans,), tmp_path / "res", jobs=1))
    (p,) = batch.passes
    assert p.code.lesson == title and p.code.student_name == name
    # On a computer that did not print them, the code's own short forms say they were cut.
    monkeypatch.setenv("EXITSCAN_DATA", str(tmp_path / "elsewhere"))
    (q,) = run_batch(ProcessOptions((scans,), tmp_path / "res2", jobs=1)).passes
    assert q.code.lesson.endswith("\u2026") and title.startswith(q.code.lesson[:-1])
    assert q.code.student_id == "1042"


def test_a_worker_that_dies_loses_only_its_page(tmp_path, passes_pdf, monkeypatch):
    """A native library crashing inside a worker (simulated: the worker exits at once on one
    page) costs that page only, reported as a problem; every other page is read."""
    from exitscan.pipeline import CRASH_ENV

    scans = tmp_path / "scans"
    scans.mkdir()
    page = _render(passes_pdf)[0]
    for name in ("a.png", "b.png", "c.png", "d.png", "e.png"):  # copies: b-e read as duplicates
        cv2.imwrite(str(scans / name), page)
    monkeypatch.setenv(CRASH_ENV, "c.png:1")
    batch = run_batch(ProcessOptions((scans,), tmp_path / "out", jobs=2))
    crashed = [p for p in batch.problems if p.source == "c.png"]
    assert len(crashed) == 1 and "crashed" in crashed[0].message
    # a.png is read; b, d and e are read too (their passes are duplicates of a's).
    assert {p.source for p in batch.passes} == {"a.png"}
    dup_sources = {p.source for p in batch.problems if p.kind == "duplicate"}
    assert dup_sources == {"b.png", "d.png", "e.png"}


def test_black_and_white_scans_are_named_in_the_summary_and_the_workbook(tmp_path, passes_pdf):
    """What a 1-bit scan lost (a light felt tip), the reader cannot flag: the teacher is told."""
    from openpyxl import load_workbook

    scans = tmp_path / "scans"
    scans.mkdir()
    page = _render(passes_pdf)[0]
    grey = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY) if page.ndim == 3 else page
    bw = np.where(grey < 150, 0, 255).astype(np.uint8)  # what a copier's black-and-white mode keeps
    cv2.imwrite(str(scans / "bw.png"), bw)
    cv2.imwrite(str(scans / "grey.png"), page)
    batch = run_batch(ProcessOptions((scans,), tmp_path / "out", jobs=1))
    notes = [w for w in batch.warnings if "black and white" in w]
    assert len(notes) == 1 and notes[0].startswith("1 page was scanned"), batch.warnings
    wb = load_workbook(tmp_path / "out" / "results.xlsx")
    assert notes[0] in wb["Next lesson"]["A2"].value
    grey_only = run_batch(ProcessOptions((scans / "grey.png",), tmp_path / "out2", jobs=1))
    assert not any("black and white" in w for w in grey_only.warnings)


def test_blurred_photos_are_named_when_their_handwriting_is_drafted(tmp_path, passes_pdf):
    """A shaken photo's handwriting can't be drafted well, whatever the engine: the teacher is
    told which pages, so as to check those drafts or retake the photo."""
    from exitscan.ocr import OcrOptions

    page = _render(passes_pdf, dpi=150)[0]
    px_per_mm = 150 / 25.4
    for name, img in (("sharp", page), ("shaken", cv2.GaussianBlur(page, (0, 0), 0.45 * px_per_mm))):
        (tmp_path / name).mkdir()
        cv2.imwrite(str(tmp_path / name / f"{name}.png"), img)
    with_drafts = OcrOptions(engine="tesseract")
    batch = run_batch(ProcessOptions((tmp_path / "shaken",), tmp_path / "out", jobs=1, ocr=with_drafts))
    assert len(batch.passes) == 4  # three pupils and a spare: read all the same
    notes = [w for w in batch.warnings if "blurred" in w]
    assert len(notes) == 1 and notes[0].startswith("1 page was blurred (shaken.png page 1)"), batch.warnings
    sharp = run_batch(ProcessOptions((tmp_path / "sharp",), tmp_path / "out2", jobs=1, ocr=with_drafts))
    assert len(sharp.passes) == 4
    assert not any("blurred" in w for w in sharp.warnings), sharp.warnings
