"""OCR of next steps with RapidOCR: the wrapper, its line splitting, its language filter, and
a batch that degrades to Tesseract (or to crops only) when RapidOCR is not there.

The real engine (rapidocr + onnxruntime, the ``ocr`` extra that ``bash test.sh`` installs)
reads every crop here. Faults are simulated only where they are the point: RapidOCR not
installed (``sys.modules["rapidocr"] = None`` makes its import fail, as on a base install), a
broken model file, a deadline too short to meet. One test runs the engine in a fresh Python with
an empty HOME, proxies pointing at a closed port and every socket call refused, to show that
nothing is downloaded or cached at run time.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from exitscan import ocr
from exitscan.nextsteps import cer
from exitscan.ocr import (
    LOW_CONFIDENCE,
    OcrFailed,
    OcrOptions,
    OcrUnavailable,
    calibrated,
    open_engine,
    rapid,
)
from exitscan.ocr.rapid import RapidOcrEngine, Script, clean_text, line_strips
from exitscan.pipeline import ProcessOptions, run_batch
from exitscan.simulate import PassMarks, make_page

SENTENCES = ["I need to learn my 8 times table.", "", "Use commas in a list.", "Read my work back to check it makes sense."]


@pytest.fixture(autouse=True)
def _fresh_engines():
    """Engines are cached per process; a test that hides RapidOCR must not leak into others."""
    ocr.close_all()
    yield
    ocr.close_all()


@pytest.fixture(scope="module")
def engine() -> RapidOcrEngine:
    e = RapidOcrEngine()
    yield e
    e.close()


def _printed(*lines: str, px_per_mm: float = 6.0) -> np.ndarray:
    """``lines`` printed in DejaVu Sans, ~4 mm capitals, one under the other: (rows, cols) uint8."""
    font = None
    for p in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf"):
        if Path(p).exists():
            font = ImageFont.truetype(p, round(5.5 * px_per_mm))
    font = font or ImageFont.load_default(round(5.5 * px_per_mm))
    w = int(max(font.getlength(t) for t in lines)) + 40
    step = round(9 * px_per_mm)
    im = Image.new("L", (w, step * len(lines) + 20), 255)
    for i, t in enumerate(lines):
        ImageDraw.Draw(im).text((20, 10 + i * step + round(1.5 * px_per_mm)), t, font=font, fill=0)
    return np.asarray(im)


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """One copier-grade sheet of four passes (three wrote, one of them on two lines); the truth."""
    d = tmp_path_factory.mktemp("scans")
    page = make_page([PassMarks.clear("orange", text=s) for s in SENTENCES], per_page=4, profile="clean", seed=5)
    img = page.image if page.image.ndim == 2 else cv2.cvtColor(page.image, cv2.COLOR_RGB2GRAY)
    assert cv2.imwrite(str(d / "sheet.png"), img)
    return d, {t.student_id: t.next_step for t in page.truth.passes}


# --------------------------------------------------------------------------- the wrapper


def test_reads_a_line_and_knows_its_version(engine):
    assert engine.name == "rapidocr" and engine.version[:1].isdigit()
    got = engine.read(_printed("Use commas in a list."), lines=1)
    assert got.text == "Use commas in a list."
    assert got.confidence >= LOW_CONFIDENCE and got.trusted
    assert got.seconds > 0
    assert engine.read(np.zeros((0, 0), np.uint8)).text == ""
    assert engine.read(np.full((60, 300), 255, np.uint8)).text == ""


def test_two_lines_are_read_top_first_with_or_without_the_count(engine):
    img = _printed("I will check my", "full stops.")
    for lines in (2, 0):
        assert engine.read(img, lines).text == "I will check my full stops."


def test_line_strips_follow_the_ink():
    img = _printed("Ask a friend", "when I am stuck.")
    strips, sure = line_strips(img, 2)
    assert sure and len(strips) == 2
    # Tight: each strip is one line of text (about 4 mm capitals at 6 px/mm), not the crop.
    assert all(s.shape[0] < 0.6 * img.shape[0] for s in strips)
    # The crop said one line but two are plainly there: not sure (the engine then detects).
    assert line_strips(img, 1)[1] is False
    # Touching lines (no blank row between): cut at the emptiest rows, still two strips.
    squeezed = np.vstack([img[: img.shape[0] // 2 - 6], img[img.shape[0] // 2 + 6 :]])
    assert len(line_strips(squeezed, 2)[0]) == 2
    assert line_strips(np.full((40, 100), 255, np.uint8), 1) == ([], True)


def test_auto_prefers_rapidocr():
    assert open_engine(OcrOptions()).name == "rapidocr"
    assert next(iter(ocr.ENGINES)) == "rapidocr" and "rapidocr" in ocr.CHOICES


def test_text_is_kept_to_the_pass_language():
    eng = Script.for_lang("eng")
    text, dropped = clean_text("Use 中文 commas， in a liste\u0301 ", eng)
    assert text == "Use commas, in a liste" and dropped > 0
    assert clean_text("I need to learn my 8 times table.", eng) == ("I need to learn my 8 times table.", 0.0)
    fra = Script.for_lang("eng+fra")
    assert clean_text("Relire ma dictée 中", fra)[0] == "Relire ma dictée"
    assert clean_text("写字", Script.for_lang("chi_sim"))[0] == "写字"
    # A draft that lost characters is less sure than the same score without.
    assert rapid.calibrate(0.99, 0.1) < rapid.calibrate(0.99) and rapid.calibrate(0.99) >= LOW_CONFIDENCE
    with pytest.raises(OcrUnavailable) as e:
        RapidOcrEngine(lang="rus")
    assert "--ocr-engine tesseract" in e.value.message


def test_confidence_is_calibrated_per_engine():
    assert calibrated(rapid.TRUSTED_SCORE, rapid.TRUSTED_SCORE) == LOW_CONFIDENCE
    xs = np.linspace(0, 1, 101)
    ys = [calibrated(x, 0.9) for x in xs]
    assert ys[0] == 0.0 and ys[-1] == 1.0 and all(a <= b for a, b in pairwise(ys))
    assert calibrated(0.89, 0.9) < LOW_CONFIDENCE <= calibrated(0.9, 0.9)


def test_a_middling_strip_gets_a_second_look_that_is_never_trusted(engine, monkeypatch):
    # Printed text squeezed to half its width and blurred: read as a strip, the model runs two
    # words together ("ina") with a middling score; read again at other proportions, it is right.
    strip = cv2.GaussianBlur(cv2.resize(_printed("Use commas in a list."), None, fx=0.5, fy=1.0, interpolation=cv2.INTER_AREA), (0, 0), 2)
    monkeypatch.setattr(rapid, "SECOND_LOOKS", ())
    (first,), (first_score,) = engine._by_strips([strip], float("inf"))
    assert first != "Use commas in a list." and first_score < rapid.SECOND_LOOK_SCORE
    monkeypatch.undo()
    (text,), (score,) = engine._by_strips([strip], float("inf"))
    assert text == "Use commas in a list."
    # The best of several readings is not a first reading's score: never above the trusted line.
    assert first_score < score <= rapid.SECOND_LOOK_SCORE < rapid.TRUSTED_SCORE
    # A clear strip is read once and keeps its score.
    assert engine._by_strips([_printed("Use commas in a list.")], float("inf"))[1][0] > rapid.SECOND_LOOK_SCORE


def test_a_reading_of_one_word_does_not_win_on_its_score():
    line = (["I want to try the challenge next time."], [0.55])
    word = (["V."], [0.9])
    assert rapid.best_reading([line, word]) == line
    # Among readings as full as each other, the better score wins.
    better = (["I want to try the challenge next time"], [0.8])
    assert rapid.best_reading([line, word, better]) == better
    assert rapid.best_reading([]) == ([], [])


def test_the_deadline_fails_that_crop_only(engine):
    img = _printed("I will check my answers with the inverse.")
    engine.timeout_s = 1e-6
    try:
        with pytest.raises(OcrFailed) as e:
            engine.read(img, 1)
        assert e.value.kind == "timeout"
    finally:
        engine.timeout_s = 10.0
    assert engine.read(img, 1).text == "I will check my answers with the inverse."


def test_a_broken_model_is_unavailable_not_a_crash_per_crop(tmp_path, monkeypatch):
    (tmp_path / rapid.DET_MODEL).write_bytes(b"not an onnx model")
    (tmp_path / rapid.REC_MODEL).write_bytes(b"not an onnx model")
    monkeypatch.setattr(rapid, "_models_dir", lambda: tmp_path)
    with pytest.raises(OcrUnavailable) as e:
        RapidOcrEngine()
    assert "does not start" in e.value.message and "pip install" in e.value.message
    monkeypatch.setattr(rapid, "_models_dir", lambda: tmp_path / "none")
    with pytest.raises(OcrUnavailable) as e:
        RapidOcrEngine()
    assert "without the models" in e.value.message


_OFFLINE = textwrap.dedent(
    """
    import json, os, socket, sys
    attempts = []
    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network is off in this test")
    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    import numpy as np
    from exitscan.ocr import OcrOptions, open_engine
    img = np.load(sys.argv[1])
    e = open_engine(OcrOptions(engine="rapidocr"))
    got = [e.read(img, 1).text, e.read(np.vstack([img, img]), 0).text]
    e._run(img, det=True)  # the detection model too
    print(json.dumps({"text": got, "attempts": attempts, "engine": e.name}))
    """
)


def test_nothing_is_downloaded_or_cached_at_run_time(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    np.save(tmp_path / "crop.npy", _printed("Use commas in a list."))
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "HF_", "MODELSCOPE"))}
    env.update(HOME=str(home), http_proxy=dead, https_proxy=dead, HTTP_PROXY=dead, HTTPS_PROXY=dead, ALL_PROXY=dead)
    r = subprocess.run([sys.executable, "-c", _OFFLINE, str(tmp_path / "crop.npy")], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["engine"] == "rapidocr" and out["attempts"] == []
    assert out["text"] == ["Use commas in a list.", "Use commas in a list. Use commas in a list."]
    assert list(home.rglob("*")) == []  # no model cache, no config written in the user's home


# --------------------------------------------------------------------------- the batch


def test_a_batch_reads_handwriting_with_rapidocr(tmp_path, scans):
    folder, truth = scans
    out = tmp_path / "out"
    batch = run_batch(ProcessOptions((folder,), out, jobs=2, ocr=OcrOptions(engine="rapidocr")))
    assert batch.warnings == []
    rows = _rows(out / "results.csv")
    assert len(rows) == 4
    errors = []
    for r in rows:
        want = truth[r["student_id"]]
        if not want:
            assert r["next_step_text"] == "" and r["next_step_confidence"] == ""
            continue
        errors.append(cer(r["next_step_text"], want))
        if float(r["next_step_confidence"]) >= LOW_CONFIDENCE:
            assert errors[-1] <= 0.1, r
    assert len(errors) == 3 and float(np.mean(errors)) < 0.1, errors
    assert all(p.ocr_engine.startswith("rapidocr ") for p in batch.passes if p.next_step_written)


def test_without_rapidocr_auto_falls_back_to_tesseract(monkeypatch):
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # as on a base install: the import fails
    assert open_engine(OcrOptions()).name == "tesseract"
    with pytest.raises(OcrUnavailable) as e:
        open_engine(OcrOptions(engine="rapidocr"))
    assert "pip install" in e.value.message and "rapidocr" in e.value.message


@pytest.mark.parametrize("jobs", [1, 2])  # read in this process / by workers, the parent checking
def test_asked_for_but_missing_warns_once_and_keeps_the_crops(tmp_path, scans, monkeypatch, run_exitscan, jobs):
    folder, _truth = scans
    monkeypatch.setitem(sys.modules, "rapidocr", None)
    out = tmp_path / "out"
    r = run_exitscan("process", folder, "--out", out, "--jobs", str(jobs), "-q", "--ocr-engine", "rapidocr")
    assert r.code == 0, r.err
    warnings = [ln for ln in r.err.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and "RapidOCR" in warnings[0] and "pip install" in warnings[0], r.err
    rows = _rows(out / "results.csv")
    assert len(rows) == 4 and all(x["next_step_text"] == "" for x in rows)
    assert all((out / x["next_step_image"]).is_file() for x in rows)


def test_the_batch_parent_picks_the_engine_without_loading_a_model():
    # In a fresh interpreter: which engine `auto` means is decided without importing rapidocr
    # (so without its ~1.7 s of model loading and 90 MiB in the parent).
    code = textwrap.dedent(
        """
        import sys
        from exitscan.ocr import OcrOptions, resolve
        got = resolve(OcrOptions(engine="auto"))
        print(got.engine, "rapidocr" in sys.modules, "onnxruntime" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["rapidocr", "False", "False"], out.stderr


def test_resolve_falls_back_and_names_what_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # as on a base install
    assert ocr.resolve(OcrOptions(engine="auto")).engine == "tesseract"
    with pytest.raises(OcrUnavailable) as e:
        ocr.resolve(OcrOptions(engine="rapidocr"))
    assert "pip install" in e.value.message
    with pytest.raises(OcrUnavailable):
        ocr.resolve(OcrOptions(engine="rapidocr", lang="hin"))  # a script its model does not read
