"""OCR of next steps: the Tesseract wrapper, and a batch that survives Tesseract's faults.

Faults are real processes: a ``tesseract`` program that is not there, one that exits 1, one
that sleeps past the timeout (small shell scripts: simulating the fault is their only job).
The batch must finish, keep every crop, leave the drafts empty and say so once. Nothing here
downloads anything; the real Tesseract (Debian's tesseract-ocr + eng) reads the rest.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

import exitscan.ocr.tesseract as tess
from exitscan import ocr
from exitscan.nextsteps import cer
from exitscan.ocr import OcrFailed, OcrOptions, OcrUnavailable, open_engine
from exitscan.ocr.tesseract import TesseractEngine, install_line, tidy
from exitscan.pipeline import ProcessOptions, run_batch
from exitscan.simulate import PassMarks, make_page

INSTALL = "apt-get install tesseract-ocr tesseract-ocr-eng"
SENTENCES = ["Use commas in a list.", "", "I need to learn my 8 times table.", "Ask a friend when I am stuck."]


@pytest.fixture(autouse=True)
def _fresh_engines():
    """Engines are cached per process; a test that hides Tesseract must not leak into others."""
    ocr.close_all()
    yield
    ocr.close_all()


def _fake(tmp_path: Path, name: str, body: str, version_ok: bool = True) -> str:
    """A stand-in ``tesseract`` program (a shell script) that answers --version and then ``body``."""
    head = 'case "$1" in --version) echo "tesseract 5.3.0"; exit 0;; --list-langs) echo eng; exit 0;; esac\n'
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + (head if version_ok else "") + body + "\n", encoding="utf-8")
    path.chmod(0o755)
    return str(path)


def _hide_tesseract(monkeypatch, tmp_path: Path) -> None:
    """As on a machine without Tesseract: no library to load, no program on PATH."""
    monkeypatch.setattr(tess, "_LIBRARY_NAMES", ("libtesseract-not-installed.so.5",))
    monkeypatch.setattr(tess.ctypes.util, "find_library", lambda name: None)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))


def _printed(text: str, px_per_mm: float = 8.0) -> np.ndarray:
    """``text`` printed in DejaVu Sans, ~4 mm capitals at 8 px/mm: (rows, cols) uint8."""
    font = None
    for p in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf"):
        if Path(p).exists():
            font = ImageFont.truetype(p, round(5.5 * px_per_mm))
    font = font or ImageFont.load_default(round(5.5 * px_per_mm))
    w = int(font.getlength(text)) + 40
    im = Image.new("L", (w, round(9 * px_per_mm)), 255)
    ImageDraw.Draw(im).text((20, round(1.5 * px_per_mm)), text, font=font, fill=0)
    return np.asarray(im)


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> Path:
    """Two copier-scanned sheets of four passes; three of each four wrote a next step."""
    d = tmp_path_factory.mktemp("scans")
    for sheet in (0, 1):
        marks = [PassMarks.clear("green", text=s) for s in SENTENCES]
        page = make_page(marks, per_page=4, profile="clean", seed=20 + sheet, sheet=sheet)
        img = page.image if page.image.ndim == 2 else cv2.cvtColor(page.image, cv2.COLOR_RGB2GRAY)
        assert cv2.imwrite(str(d / f"sheet{sheet + 1}.png"), img)
    return d


# --------------------------------------------------------------------------- the wrapper


def test_tesseract_reads_printed_text_and_knows_its_version():
    engine = open_engine(OcrOptions(engine="tesseract"))
    assert engine.name == "tesseract" and engine.version[:1].isdigit()
    got = engine.read(_printed("Use commas in a list."), lines=1)
    assert got.text == "Use commas in a list."
    assert got.confidence > 0.8 and got.trusted
    assert got.seconds > 0
    assert engine.read(np.zeros((0, 0), np.uint8)).text == ""


def test_the_program_and_the_library_read_alike():
    img = _printed("I need to show my working out.")
    lib = TesseractEngine()
    prog = TesseractEngine(cmd="tesseract")
    assert (lib.how, prog.how) == ("library", "program")
    assert lib.version == prog.version
    a, b = lib.read(img, 1), prog.read(img, 1)
    assert a.text == b.text == "I need to show my working out."
    assert abs(a.confidence - b.confidence) < 0.05


def test_missing_tesseract_says_how_to_install_it(tmp_path, monkeypatch):
    with pytest.raises(OcrUnavailable) as e:
        TesseractEngine(cmd=str(tmp_path / "no" / "tesseract"))
    assert INSTALL in e.value.message
    # No library and no program on PATH: the same when asked for by name.
    _hide_tesseract(monkeypatch, tmp_path)
    with pytest.raises(OcrUnavailable) as e:
        open_engine(OcrOptions(engine="tesseract"))
    assert INSTALL in e.value.message
    # ... and through `auto` when RapidOCR is missing too: both install lines, in one message.
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # `import rapidocr` raises ImportError
    with pytest.raises(OcrUnavailable) as e:
        open_engine(OcrOptions(engine="auto"))
    assert INSTALL in e.value.message and "pip install" in e.value.message


def test_missing_language_data_names_its_package():
    with pytest.raises(OcrUnavailable) as e:
        TesseractEngine(lang="xyz")
    assert "tesseract-ocr-xyz" in e.value.message
    assert install_line("eng+chi_sim") == "sudo apt-get install tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim"


def test_a_tesseract_that_crashes_fails_that_crop_only(tmp_path):
    engine = TesseractEngine(cmd=_fake(tmp_path, "tesseract", 'echo "Error: simulated crash" >&2; exit 1'))
    with pytest.raises(OcrFailed) as e:
        engine.read(_printed("Use commas"), 1)
    assert e.value.kind == "crashed" and "exited with 1" in e.value.message


def test_a_tesseract_that_hangs_is_stopped_at_the_timeout(tmp_path):
    engine = TesseractEngine(timeout_s=0.5, cmd=_fake(tmp_path, "tesseract", "exec sleep 30"))
    start = time.perf_counter()
    with pytest.raises(OcrFailed) as e:
        engine.read(_printed("Use commas"), 1)
    assert e.value.kind == "timeout"
    assert time.perf_counter() - start < 5


def test_the_library_keeps_its_deadline_too():
    big = np.tile(_printed("I will check my answers with the inverse."), (12, 3))
    engine = TesseractEngine(timeout_s=0.001)
    with pytest.raises(OcrFailed) as e:
        engine.read(big, 0)
    assert e.value.kind == "timeout"
    # The engine is still usable afterwards (no half-read state carried over).
    engine.timeout_s = 10.0
    assert engine.read(_printed("Ask a friend"), 1).text == "Ask a friend"


def test_a_program_that_does_not_run_is_unavailable_not_a_crash_per_crop(tmp_path):
    with pytest.raises(OcrUnavailable) as e:
        TesseractEngine(cmd=_fake(tmp_path, "tesseract", "exit 1", version_ok=False))
    assert "does not work" in e.value.message and INSTALL in e.value.message


def test_tidy_makes_one_plain_line():
    assert tidy("  I will check\nmy “answers” |\n") == 'I will check my "answers"'
    assert tidy("_— Use commas.") == "Use commas."


def test_threads_are_limited_for_the_worker_pool():
    TesseractEngine()
    assert os.environ.get("OMP_THREAD_LIMIT") == "1"


# --------------------------------------------------------------------------- the batch


def test_drafts_land_in_results_csv_and_empty_areas_stay_ok(tmp_path, scans):
    out = tmp_path / "out"
    batch = run_batch(ProcessOptions((scans,), out, jobs=1, ocr=OcrOptions(engine="tesseract")))
    assert batch.warnings == []
    rows = _rows(out / "results.csv")
    assert len(rows) == 8
    assert rows and list(rows[0])[-2:] == ["next_step_confidence", "next_step_match_distance"]
    truth = {}
    for sheet in (0, 1):
        page = make_page([PassMarks.clear("green", text=s) for s in SENTENCES], per_page=4, profile="clean", seed=20 + sheet, sheet=sheet)
        truth.update({(f"sheet{sheet + 1}.png", t.student_id): t.next_step for t in page.truth.passes})
    errors = []
    for r in rows:
        want = truth[(r["source"], r["student_id"])]
        assert (out / r["next_step_image"]).is_file()
        if not want:
            assert r["next_step_text"] == "" and r["next_step_confidence"] == "" and r["status"] == "ok"
        else:
            assert r["next_step_text"], r
            assert 0.0 <= float(r["next_step_confidence"]) <= 1.0
            errors.append(cer(r["next_step_text"], want))
    assert len(errors) == 6 and float(np.mean(errors)) < 0.4, errors
    assert all(p.ocr_engine.startswith("tesseract ") for p in batch.passes if p.next_step_written)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_crashing_tesseract_is_reported_once_and_the_batch_completes(tmp_path, scans, jobs):
    fake = _fake(tmp_path, "tesseract", 'echo "Error: simulated crash" >&2; exit 1')
    out = tmp_path / "out"
    batch = run_batch(ProcessOptions((scans,), out, jobs=jobs, ocr=OcrOptions(engine="tesseract", tesseract_cmd=fake)))
    assert len(batch.passes) == 8 and batch.problems == []
    assert len(batch.warnings) == 1, batch.warnings
    assert "OCR failed on 6 of 6 next steps" in batch.warnings[0] and "exited with 1" in batch.warnings[0]
    rows = _rows(out / "results.csv")
    assert all(r["next_step_text"] == "" for r in rows)
    assert all((out / r["next_step_image"]).is_file() for r in rows)
    assert {r["status"] for r in rows} == {"ok"}  # an OCR fault is not the pupil's rating's fault


def test_a_hanging_tesseract_times_out_and_the_batch_completes(tmp_path, scans):
    fake = _fake(tmp_path, "tesseract", "exec sleep 30")
    out = tmp_path / "out"
    start = time.perf_counter()
    batch = run_batch(ProcessOptions((scans,), out, jobs=2, ocr=OcrOptions(engine="tesseract", tesseract_cmd=fake, timeout_s=0.5)))
    assert time.perf_counter() - start < 25
    assert len(batch.passes) == 8
    assert len(batch.warnings) == 1 and "ran out of time on 6 of 6" in batch.warnings[0]
    assert len(list((out / "crops").glob("*next-step*.png"))) == 8


def test_missing_tesseract_warns_once_on_stderr_and_keeps_the_crops(tmp_path, scans, monkeypatch, run_exitscan):
    _hide_tesseract(monkeypatch, tmp_path)
    out = tmp_path / "out"
    r = run_exitscan("process", scans, "--out", out, "--jobs", "1", "-q", "--ocr-engine", "tesseract")
    assert r.code == 0, r.err
    warnings = [ln for ln in r.err.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and INSTALL in warnings[0], r.err
    rows = _rows(out / "results.csv")
    assert len(rows) == 8 and all(r_["next_step_text"] == "" for r_ in rows)
    assert all((out / r_["next_step_image"]).is_file() for r_ in rows)


def test_no_ocr_skips_it_quietly(tmp_path, scans, run_exitscan):
    out = tmp_path / "out"
    r = run_exitscan("process", scans, "--out", out, "--jobs", "1", "-q", "--no-ocr")
    assert r.code == 0 and "warning" not in r.err
    rows = _rows(out / "results.csv")
    assert len(rows) == 8 and all(x["next_step_text"] == "" for x in rows)


def test_lang_is_checked_at_the_door(tmp_path, scans, run_exitscan):
    r = run_exitscan("process", scans, "--out", tmp_path / "out", "--lang", "eng; rm -rf /")
    assert r.code == 3 and "--lang" in r.err
    r = run_exitscan("process", scans, "--out", tmp_path / "out2", "--jobs", "1", "-q", "--lang", "xyz")
    assert r.code == 0 and "tesseract-ocr-xyz" in r.err


# --------------------------------------------------------------------------- the benchmark


def test_the_ocr_benchmark_compares_every_installed_engine(tmp_path):
    """benchmarks/ocr.py at a tiny size (one sheet of the hard set): every engine, side by side."""
    import importlib.util
    import json

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "ocr.py"
    spec = importlib.util.spec_from_file_location("bench_ocr", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    assert bench.main(["--passes", "4", "--profiles", "hard", "--speed-passes", "0", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "ocr.json").read_text())
    names = [label.split()[0] for _name, label in data["engines"]]
    assert names == ["rapidocr", "tesseract"]  # both installed by test.sh, best first
    rows = data["profiles"]
    assert [r["engine"].split()[0] for r in rows] == names and {r["profile"] for r in rows} == {"hard"}
    for r in rows:
        assert r["written"] == r["found"] == 4 and 0.0 <= r["cer"] <= 1.0 and r["ms_per_crop"] > 0
    assert "| hard | rapidocr" in (tmp_path / "ocr.md").read_text()
