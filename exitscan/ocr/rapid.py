"""RapidOCR (PP-OCR models on onnxruntime), the one way exitscan reaches it.

Version, "missing" in plain words (with the install line), a per-crop deadline, and text kept
to the pass's language. The models are the ones inside the ``rapidocr`` wheel, named by path:
nothing is looked up or downloaded at run time, and nothing is written to disk (no model cache,
no settings in the user's home).

How a crop is read. Our crops are already the writing alone (ruled lines and print removed,
paper white, ~6 px/mm) and the crop says how many lines of writing it found. So the usual
PP-OCR pipeline (a detection model finds text boxes, the recognition model reads each) is cut
short: the crop is split into line strips by its ink rows (`line_strips`), and only the
recognition model reads each strip (~45 ms of one core a line, against ~110-250 ms a crop
with detection). Detection (``limit_type=max``, 640 px) is the fallback when the split is unsure
(the strips found disagree with the line count, or a strip is implausibly thin) or when the
recognition is unsure on a strip (score below `RESCUE_SCORE`); then the reading with the better
score is kept, among the readings that hold most of the text (`FULLER`). No angle classifier:
crops are upright.

A strip read with a middling score (below `SECOND_LOOK_SCORE`: blurred, bold or dotted writing)
gets a second look at other proportions (`SECOND_LOOKS`: squashed, widened); the reading with the
best score is kept, and a second look never makes a draft trusted.

The recognition model's output is decoded with a word prior (`exitscan.ocr.ctc`: a CTC beam
search that charges a word missing from Debian's British English list, ``wbritish``), in place of
rapidocr's greedy decoding: a letter the model half-read wrong inside a word is put right when
the word's spelling had nearly as much of the model's probability; a misspelling it read clearly
stays. Drafts for other languages, or without the word list, are decoded greedily as before.
A draft read so whose every token is a known word or a number is trusted from
`TRUSTED_SCORE_KNOWN`; any other from `TRUSTED_SCORE`.

onnxruntime runs one thread per model (``intra_op_num_threads=1``): exitscan's worker
processes already use every core. The models load once per worker (``exitscan.ocr.worker_engine``);
detection only if a crop ever needs it.

onnxruntime (from 1.29, on Linux too) would send Microsoft a telemetry event and keep a device id
in ``~/.cache/Microsoft``; exitscan makes no network calls, so ``ORT_DISABLE_TELEMETRY=1`` is set
before onnxruntime is imported (its full opt-out: nothing is sent or written). The tests check
that the user's home stays empty.

The deadline is checked between model runs (a single run is not interrupted; on the largest
crop a pass can give, one run takes well under a second).
"""

from __future__ import annotations

import importlib.util
import os
import re
import time
import unicodedata
from dataclasses import dataclass
from importlib import metadata
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np

from exitscan.ocr.base import OcrFailed, OcrText, OcrUnavailable, calibrated
from exitscan.ocr.ctc import Lexicon, WordBeamDecoder, WordBeamSettings

#: The pip requirements of this engine (also the ``ocr`` extra in pyproject.toml).
REQUIREMENTS = ('"rapidocr>=3.10"', '"onnxruntime>=1.20"')
#: The models, as the rapidocr 3.10 wheel ships them (inside the package's ``models/``).
DET_MODEL = "PP-OCRv6_det_small.onnx"
REC_MODEL = "PP-OCRv6_rec_small.onnx"
#: Below this recognition score on any strip, detection + recognition is tried as well (rare:
#: on the simulator, retrying below 0.8 or 0.95 changed the CER by < 0.005 and cost ~30% more).
RESCUE_SCORE = 0.50
#: A strip read below this score is read again at `SECOND_LOOKS` (the model's reading of blurred
#: or dotted strokes changes with the letters' proportions). On benchmarks/ocr.py, seeds 11 and 12,
#: it took 0.003-0.008 off the CER of bw-copier, low-quality and phone (+0.002 on phone, seed 12),
#: copier unchanged, for ~25% more OCR time on those profiles.
SECOND_LOOK_SCORE = 0.90
#: (fx, fy) resizings of a strip for the second look: letters 0.8x as tall, 1.25x as wide.
SECOND_LOOKS = ((1.0, 0.8), (1.25, 1.0))
#: A reading is a candidate only if it holds at least this share of the characters of the fullest
#: reading: detection that found one word of a line must not win on that word's score alone.
FULLER = 0.5
#: The recognition score (the weakest line's mean character probability) from which drafts are
#: trusted (`exitscan.ocr.calibrated` maps it to 0.8). Fitted on benchmarks/ocr.py crops of every
#: profile, seed 11: drafts >= 0.98 had 1.4% CER (22% of drafts); checked on seed 12: 1.3% (28%).
TRUSTED_SCORE = 0.98
#: The same for a draft read with the word prior (`exitscan.ocr.ctc`) whose every token is a
#: known word or a number (`Lexicon.knows`). Fitted on benchmarks/ocr.py crops of every profile,
#: seeds 11 and 12 (the decoder's settings chosen first, on the same seeds): drafts >= 0.95 had
#: 1.0% CER (49% of drafts), >= 0.93 1.3%; drafts holding an unknown word keep `TRUSTED_SCORE`.
TRUSTED_SCORE_KNOWN = 0.95
#: The word prior's settings (`exitscan.ocr.ctc`); its cost of an unknown word was chosen on
#: benchmarks/ocr.py seeds 11 and 12 (see WordBeamSettings.oov_cost).
WORD_SETTINGS = WordBeamSettings()
#: Ink: a pixel darker than this (crops are contrast-stretched, paper 255).
INK_LEVEL = 160


def install_line() -> str:
    """The command that installs this engine into exitscan's Python environment."""
    return "pip install " + " ".join(REQUIREMENTS) + " (from exitscan's folder: bash scripts/install.sh)"


def missing_message(detail: str = "") -> str:
    why = f" ({detail})" if detail else ""
    return (
        f"RapidOCR (the OCR engine that reads handwriting best) is not installed{why}. "
        f"Install it with: {install_line()}"
    )


# --------------------------------------------------------------------------- language


#: Tesseract language codes (what ``--lang`` takes) whose script is Latin: the PP-OCRv6
#: recognition model reads them (it is multilingual: Latin, Chinese, Japanese).
LATIN_LANGS = frozenset({
    "afr", "aze", "bos", "cat", "ces", "cym", "dan", "deu", "eng", "est", "eus", "fin", "fra",
    "gla", "gle", "glg", "hrv", "hun", "ind", "isl", "ita", "lat", "lav", "lit", "ltz", "mlt",
    "mri", "msa", "nld", "nor", "oci", "pol", "por", "que", "ron", "slk", "slv", "spa", "sqi",
    "swa", "swe", "tgl", "tur", "uzb", "vie",
})
CJK_LANGS = frozenset({"chi_sim", "chi_tra", "jpn"})
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "‚": "'", "—": "-", "–": "-", "´": "'", "`": "'"})
_EDGE_JUNK = re.compile(r"^[\s|_~,;:\-=\\/*^]+|[\s|_~,;:\-=\\/*^]+$")


@dataclass(frozen=True)
class Script:
    """Which characters a draft in the pass's language may hold."""

    ascii_only: bool  # English: ASCII (an accent on an English word is a misread)
    latin: bool  # other Latin-script languages: their letters with accents too
    cjk: bool  # Chinese / Japanese: anything the model reads

    @classmethod
    def for_lang(cls, lang: str) -> Script:
        codes = [c for c in lang.split("+") if c]
        unknown = [c for c in codes if c not in LATIN_LANGS and c not in CJK_LANGS]
        if not codes or unknown:
            raise OcrUnavailable(
                f"RapidOCR does not read --lang {'+'.join(unknown) or lang!r} (its model reads Latin-script "
                "languages, Chinese and Japanese); use --ocr-engine tesseract for it"
            )
        cjk = any(c in CJK_LANGS for c in codes)
        return cls(ascii_only=set(codes) == {"eng"}, latin=not cjk, cjk=cjk)

    def allows(self, ch: str) -> bool:
        if ch == " " or (ch.isascii() and ch.isprintable()):
            return True
        if self.ascii_only:
            return False
        if self.cjk:
            return ch.isprintable()
        # Latin letters with their accents, and the punctuation those languages use.
        return unicodedata.name(ch, "").startswith("LATIN") or ch in "«»¡¿ºª€£"


def clean_text(raw: str, script: Script) -> tuple[str, float]:
    """The model's text as one plain line in ``script``, and the share of characters dropped.

    Full-width forms become ASCII (NFKC); for English, accents are taken off (é -> e); any
    character the language does not use (the model also knows CJK) is dropped.
    """
    text = unicodedata.normalize("NFKC", raw).translate(_QUOTES)
    if script.ascii_only:
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    kept = "".join(c if script.allows(c) else "\x00" for c in text)
    dropped = kept.count("\x00")
    text = _EDGE_JUNK.sub("", " ".join(kept.replace("\x00", " ").split()))
    return text, dropped / max(1, len(raw.strip()))


# --------------------------------------------------------------------------- lines


def line_strips(image: np.ndarray, lines: int = 0) -> tuple[list[np.ndarray], bool]:
    """Cut a crop of writing into one tight strip per line of writing, top to bottom.

    ``image``: (rows, cols) uint8, dark writing on white. ``lines``: the lines the crop holds
    when known (0: unknown). Returns the strips (uint8, each trimmed to its ink with a margin
    of 0.05x its height above and below, 0.2x at the ends) and whether the split is sure: the
    bands of inked rows agree with ``lines`` and none is implausibly thin.
    """
    ink = image < INK_LEVEL
    rows = ink.sum(axis=1).astype(np.float32)
    inked = np.flatnonzero(rows)
    if inked.size == 0:
        return [], True
    y0, y1 = int(inked[0]), int(inked[-1]) + 1
    # Bands: runs of rows with ink, small gaps bridged; bits much lower than the tallest band
    # (a full stop, a descender's tail) are not lines of their own.
    profile = np.convolve(rows, np.ones(3, np.float32) / 3, mode="same")
    on = profile > max(1.0, 0.01 * image.shape[1])
    runs: list[list[int]] = []
    for y in range(y0, y1):
        if on[y]:
            if runs and y - runs[-1][1] <= 2:
                runs[-1][1] = y + 1
            else:
                runs.append([y, y + 1])
    tallest = max((b - a for a, b in runs), default=0)
    big = [r for r in runs if r[1] - r[0] >= 0.45 * tallest]
    want = lines if lines > 0 else len(big)
    sure = len(big) == want
    if len(big) == want and want > 1:
        # Cut halfway between the bands; the bits between go with the nearer band.
        cuts = [(big[i][1] + big[i + 1][0]) // 2 for i in range(want - 1)]
    elif want > 1:
        # Touching lines (a descender reaching the next line's ascenders): cut at the emptiest
        # rows near the even split.
        h = (y1 - y0) / want
        cuts = []
        for k in range(1, want):
            c = y0 + k * h
            lo, hi = int(c - 0.35 * h), int(c + 0.35 * h) + 1
            cuts.append(lo + int(np.argmin(profile[lo:hi])))
    else:
        cuts = []
    edges = [y0, *cuts, y1]
    strips: list[np.ndarray] = []
    heights: list[int] = []
    for a, b in pairwise(edges):
        band = ink[a:b]
        r = np.flatnonzero(band.any(axis=1))
        c = np.flatnonzero(band.any(axis=0))
        if r.size == 0:
            sure = False
            continue
        ya, yb = a + int(r[0]), a + int(r[-1]) + 1
        xa, xb = int(c[0]), int(c[-1]) + 1
        h = yb - ya
        v, e = round(0.05 * h), round(0.2 * h)
        strips.append(cv2.copyMakeBorder(image[ya:yb, xa:xb], v, v, e, e, cv2.BORDER_CONSTANT, value=255))
        heights.append(h)
    if len(heights) > 1 and min(heights) < 0.4 * max(heights):
        sure = False
    return strips, sure


def calibrate(score: float, dropped: float = 0.0, known: bool = False) -> float:
    """A confidence (0-1) from RapidOCR's recognition score (the mean character probability
    of the weakest line; `TRUSTED_SCORE` becomes 0.8, or `TRUSTED_SCORE_KNOWN` when ``known``:
    read with the word prior, every token a known word or a number). A draft that lost characters foreign to
    its language (CJK read into English writing) was misread there: each costs 5x its share
    (a cautious rule, not fitted: such drafts are rare on the simulator)."""
    trusted_at = TRUSTED_SCORE_KNOWN if known else TRUSTED_SCORE
    return round(max(0.0, calibrated(score, trusted_at) - 5.0 * dropped), 3)


# --------------------------------------------------------------------------- the engine


def _no_telemetry() -> None:
    """onnxruntime's telemetry off, before it is imported (it reads this once per process)."""
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"


_no_telemetry()  # here too: whoever imports onnxruntime after this module gets it off


def _models_dir() -> Path:
    import rapidocr

    return Path(rapidocr.__file__).resolve().parent / "models"


def probe(lang: str = "eng") -> None:
    """Check, without importing rapidocr or loading a model (a few ms, not ~1.7 s and 90 MiB),
    that RapidOCR is installed with its models and reads ``lang``; `OcrUnavailable` if not."""
    Script.for_lang(lang)
    for module in ("onnxruntime", "rapidocr"):
        if importlib.util.find_spec(module) is None:
            raise OcrUnavailable(missing_message(f"no module {module!r}"))
    spec = importlib.util.find_spec("rapidocr")
    models = Path(spec.origin).resolve().parent / "models" if spec and spec.origin else Path("?")
    if not ((models / DET_MODEL).is_file() and (models / REC_MODEL).is_file()):
        raise OcrUnavailable(
            f"RapidOCR is installed without the models exitscan uses ({DET_MODEL}, {REC_MODEL} in "
            f"{models}); install a version that ships them: {install_line()}"
        )


class RapidOcrEngine:
    """RapidOCR behind `exitscan.ocr.OcrEngine`.

    Raises `OcrUnavailable` when rapidocr or onnxruntime is not installed, when the wheel has
    no models, or when ``lang`` is not a language its model reads (the message says what to do).
    """

    name = "rapidocr"

    def __init__(self, lang: str = "eng", timeout_s: float = 10.0, threads: int = 1,
                 lexicon: Lexicon | None | bool = True, word_settings: WordBeamSettings = WORD_SETTINGS):
        self.script = Script.for_lang(lang)
        self.lang = lang
        self.timeout_s = float(timeout_s)
        _no_telemetry()
        try:
            import onnxruntime
            from rapidocr import RapidOCR
        except ImportError as e:
            raise OcrUnavailable(missing_message(f"no module {e.name!r}" if e.name else str(e))) from None
        try:
            self.version = metadata.version("rapidocr")
        except metadata.PackageNotFoundError:
            self.version = "unknown"
        models = _models_dir()
        det, rec = models / DET_MODEL, models / REC_MODEL
        if not (det.is_file() and rec.is_file()):
            raise OcrUnavailable(
                f"RapidOCR {self.version} is installed without the models exitscan uses "
                f"({DET_MODEL}, {REC_MODEL} in {models}); install a version that ships them: {install_line()}"
            )
        self.runtime = f"onnxruntime {onnxruntime.__version__}"
        params = {
            "Global.use_cls": False,
            "Global.log_level": "critical",  # it would warn on stderr for every empty detection
            "Det.model_path": str(det),
            "Rec.model_path": str(rec),
            "Det.limit_type": "max",
            "Det.limit_side_len": 640,
            "EngineConfig.onnxruntime.intra_op_num_threads": int(threads),
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        try:
            self._ocr = RapidOCR(params=params)
            # Load the recognition model now (a broken install fails here, not on a crop).
            self._ocr(np.full((48, 96, 3), 255, np.uint8), use_det=False, use_cls=False)
        except Exception as e:  # noqa: BLE001 - whatever a broken install raises
            raise OcrUnavailable(f"RapidOCR {self.version} does not start ({type(e).__name__}: {e}); reinstall it: {install_line()}") from None
        if lexicon is True:
            lexicon = Lexicon.system() if self.script.ascii_only else None
        self.decoding = _use_word_decoder(self._ocr, lexicon or None, word_settings)
        self.lexicon = lexicon if self.decoding != "greedy" else None

    # -- one crop ----------------------------------------------------------------------

    def _check(self, deadline: float) -> None:
        if time.perf_counter() > deadline:
            raise OcrFailed("timeout", f"RapidOCR took longer than {self.timeout_s:g} s on one crop")

    def _run(self, img: np.ndarray, det: bool) -> tuple[list[str], list[float]]:
        if self._ocr is None:
            raise OcrFailed("crashed", "RapidOCR was closed")
        try:
            out = self._ocr(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), use_det=det, use_cls=False)
        except Exception as e:  # noqa: BLE001 - onnxruntime's errors have no common base
            raise OcrFailed("crashed", f"RapidOCR failed ({type(e).__name__}: {str(e).strip()[:160]})") from None
        txts = [str(t) for t in (getattr(out, "txts", None) or ())]
        scores = [float(s) for s in (getattr(out, "scores", None) or ())]
        return txts, scores

    def _by_strips(self, strips: list[np.ndarray], deadline: float) -> tuple[list[str], list[float]]:
        texts: list[str] = []
        scores: list[float] = []
        for s in strips:
            t, sc = self._run(s, det=False)
            text, score = " ".join(t), (min(sc) if sc else 0.0)
            self._check(deadline)
            if score < SECOND_LOOK_SCORE:
                first = score
                for fx, fy in SECOND_LOOKS:
                    t, sc = self._run(resized(s, fx, fy), det=False)
                    self._check(deadline)
                    if sc and min(sc) > score:
                        text, score = " ".join(t), min(sc)
                if score > first:
                    # Picked as the best of several: its score says less than a first reading's.
                    score = min(score, SECOND_LOOK_SCORE)
            texts.append(text)
            scores.append(score)
        return texts, scores

    def read(self, image: np.ndarray, lines: int = 0) -> OcrText:
        start = time.perf_counter()
        if image.size == 0:
            return OcrText("", 0.0, 0.0)
        deadline = start + self.timeout_s
        strips, sure = line_strips(image, lines)
        readings: list[tuple[list[str], list[float]]] = []
        if strips:
            readings.append(self._by_strips(strips, deadline))
        if not sure:
            # The crop's line count and its ink disagree (a long descender taken for a second
            # line, two lines that touch): read the lines as the ink shows them too...
            seen, _ = line_strips(image, 0)
            if seen and len(seen) != len(strips):
                readings.append(self._by_strips(seen, deadline))
        if not sure or not readings or min(readings[0][1], default=0.0) < RESCUE_SCORE:
            # ... and let the detection model find the lines.
            found = self._run(image, det=True)
            self._check(deadline)
            if found[1]:
                readings.append(found)
        texts, scores = best_reading(readings)
        raw = " ".join(t.strip() for t in texts if t.strip())
        text, dropped = clean_text(raw, self.script)
        known = self.lexicon is not None and self.lexicon.knows(text)
        conf = calibrate(min(scores), dropped, known) if (text and scores) else 0.0
        return OcrText(text, conf, time.perf_counter() - start)

    def close(self) -> None:
        self._ocr = None

    def __repr__(self) -> str:
        return f"RapidOcrEngine(lang={self.lang!r}, version={self.version!r}, {self.runtime})"


class _WordDecode:
    """Stands in for rapidocr's CTC decoder (``TextRecognizer.postprocess_op``, called with the
    model's (batch, T, C) probabilities): each line decoded by a `WordBeamDecoder`."""

    def __init__(self, original, decoder: WordBeamDecoder):
        self.original = original
        self.decoder = decoder
        self.character = original.character

    def __call__(self, preds: np.ndarray, return_word_box: bool = False, **kwargs):
        if return_word_box:  # word boxes: exitscan never asks; rapidocr's own decoder has them
            return self.original(preds, return_word_box, **kwargs)
        return [self.decoder(p) for p in preds], []


def _use_word_decoder(ocr, lexicon: Lexicon | None, settings: WordBeamSettings) -> str:
    """Put a `WordBeamDecoder` in place of rapidocr's greedy CTC decoding; says which is used.

    Greedy stays when there is no word list (or the language is not English) and when this
    rapidocr's recogniser does not look as 3.10's does (no ``text_rec.postprocess_op`` with
    its alphabet): the reading is then what rapidocr gives by itself."""
    rec = getattr(ocr, "text_rec", None)
    op = getattr(rec, "postprocess_op", None)
    chars = getattr(op, "character", None)
    if lexicon is None or not chars or not callable(op):
        return "greedy"
    rec.postprocess_op = _WordDecode(op, WordBeamDecoder(chars, lexicon, settings))
    return f"word beam ({len(lexicon)} words)"


def resized(strip: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """``strip`` (uint8) resized by ``fx`` across and ``fy`` down (area when shrinking, cubic when growing)."""
    shrink = fx * fy < 1.0
    return cv2.resize(strip, None, fx=fx, fy=fy, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def _chars(reading: tuple[list[str], list[float]]) -> int:
    return sum(len(t.strip()) for t in reading[0])


def best_reading(readings: list[tuple[list[str], list[float]]]) -> tuple[list[str], list[float]]:
    """Of several readings of one crop ((line texts, line scores) each), the one with the best
    `_weighted` score among those holding at least `FULLER` of the fullest one's characters."""
    if not readings:
        return [], []
    most = max(_chars(r) for r in readings)
    return max((r for r in readings if _chars(r) >= FULLER * most), key=_weighted)


def _weighted(reading: tuple[list[str], list[float]]) -> float:
    """Mean score of a reading, each line weighted by its length (a stray dot weighs little).
    (Counting characters instead, so that a fuller reading wins, measured no better.)"""
    texts, scores = reading
    w = np.array([max(1, len(t.strip())) for t in texts], np.float64)
    return float(np.dot(w, scores) / w.sum()) if len(w) else 0.0


__all__ = ["RapidOcrEngine", "Script", "best_reading", "calibrate", "clean_text", "install_line", "line_strips", "missing_message", "resized"]
