"""Tesseract, the one way exitscan reaches it: version, per-crop timeout, "missing" in plain words.

Two ways to the same engine (same traineddata, same results), chosen when the engine opens:

- **in-process**, through the library's C API (``libtesseract.so.5``, part of Debian's
  ``tesseract-ocr``) with `ctypes`: ~30-60 ms a crop, the model loaded once per worker. A
  per-crop deadline is Tesseract's own (an ``ETEXT_DESC`` monitor);
- **a process per crop**, through pytesseract and the ``tesseract`` program: ~150-250 ms a
  crop, mostly process start-up. Used when the library can't be loaded, or when a particular
  program is asked for (``OcrOptions.tesseract_cmd``); killed after the timeout.

Tesseract's OpenMP threads fight the worker pool, so ``OMP_THREAD_LIMIT=1`` is set before the
library is loaded and passed to every ``tesseract`` process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shutil
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from exitscan.ocr.base import OcrFailed, OcrText, OcrUnavailable, calibrated

#: Crops are cut at 8 px/mm: tell Tesseract so (it otherwise guesses, and warns).
CROP_DPI = 203
#: Page segmentation: one line of text, or a block of a few lines.
PSM_LINE = 7
PSM_BLOCK = 6
#: Tesseract settings: no second pass on an inverted image (slow, and pupils write dark on light).
SETTINGS = {"tessedit_do_invert": "0"}
#: Tesseract's mean word confidence (0-1) from which its drafts of the simulator's handwriting
#: have <= 2% character errors: calibrated to `exitscan.ocr.LOW_CONFIDENCE` (its raw 0.8 gave
#: ~4%). Fitted on benchmarks/ocr.py crops, seed 11 (raw >= 0.90: 1.6% CER), checked on seed 12 (1.7%).
TRUSTED_CONF = 0.90
_LIBRARY_NAMES = ("libtesseract.so.5", "libtesseract.so.4", "libtesseract.so")


def install_line(lang: str = "eng") -> str:
    """The Debian command that installs Tesseract with the data for ``lang`` (``eng+fra``...)."""
    pkgs = ["tesseract-ocr"] + [f"tesseract-ocr-{code.lower().replace('_', '-')}" for code in lang.split("+") if code]
    return "sudo apt-get install " + " ".join(dict.fromkeys(pkgs))


def missing_message(lang: str = "eng") -> str:
    return (
        "Tesseract (the OCR program) is not installed, so next steps were not read as text; "
        f"their images are kept in crops/. To read them, install it: {install_line(lang)}"
    )


def _limit_threads() -> None:
    os.environ["OMP_THREAD_LIMIT"] = "1"


_EDGE_JUNK = re.compile(r"^[\s|_~`,;:\-—–=\\/*^]+|[\s|_~`,;:\-—–=\\/*^]+$")
_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "—": "-", "–": "-"})


def tidy(raw: str) -> str:
    """Tesseract's lines as one sentence: single spaces, plain quotes, no stray edge marks.

    A bar standing alone before a word is a capital I ("I need to..." often reads "| need to...").
    """
    words = raw.translate(_QUOTES).split()
    words = ["I" if w == "|" and i < len(words) - 1 else w for i, w in enumerate(words)]
    return _EDGE_JUNK.sub("", " ".join(words))


# --------------------------------------------------------------------------- in-process


@contextmanager
def _quiet_stderr():
    """Silence what the library prints straight to file descriptor 2 (e.g. a missing model)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _load_library(names: tuple[str, ...] | None = None) -> ctypes.CDLL:
    """libtesseract with the C API's signatures declared; OSError when it is not there.

    ``names``: the files to try (None: the usual ones, and the linker's own search)."""
    found = ctypes.util.find_library("tesseract") if names is None else None
    last: OSError | None = None
    for name in (*(names or _LIBRARY_NAMES), *([found] if found else [])):
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError as e:
            last = e
    else:
        raise last or OSError("libtesseract not found")
    V, I, S = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    sigs = {
        "TessVersion": ([], S),
        "TessBaseAPICreate": ([], V),
        "TessBaseAPIInit3": ([V, S, S], I),
        "TessBaseAPISetVariable": ([V, S, S], I),
        "TessBaseAPISetPageSegMode": ([V, I], None),
        "TessBaseAPISetImage": ([V, V, I, I, I, I], None),
        "TessBaseAPISetSourceResolution": ([V, I], None),
        "TessBaseAPIRecognize": ([V, V], I),
        "TessBaseAPIGetUTF8Text": ([V], V),
        "TessBaseAPIAllWordConfidences": ([V], ctypes.POINTER(I)),
        "TessBaseAPIClear": ([V], None),
        "TessBaseAPIEnd": ([V], None),
        "TessBaseAPIDelete": ([V], None),
        "TessDeleteText": ([V], None),
        "TessDeleteIntArray": ([V], None),
        "TessMonitorCreate": ([], V),
        "TessMonitorSetDeadlineMSecs": ([V, I], None),
        "TessMonitorDelete": ([V], None),
    }
    for fname, (args, res) in sigs.items():
        f = getattr(lib, fname)  # AttributeError: not a Tesseract C API we know
        f.argtypes = args
        f.restype = res
    return lib


class _Library:
    """libtesseract in this process: one initialised API object, reused for every crop."""

    def __init__(self, lang: str, names: tuple[str, ...] | None = None):
        _limit_threads()  # before OpenMP starts inside the library
        try:
            self._lib = _load_library(names)
        except (OSError, AttributeError) as e:
            raise FileNotFoundError(str(e)) from None
        self.version = (self._lib.TessVersion() or b"").decode("ascii", "replace")
        self._api = self._lib.TessBaseAPICreate()
        with _quiet_stderr():
            rc = self._lib.TessBaseAPIInit3(self._api, None, lang.encode())
        if rc != 0:
            self._lib.TessBaseAPIDelete(self._api)
            self._api = None
            raise OcrUnavailable(
                f"Tesseract has no language data for '{lang}', so next steps were not read as text; "
                f"their images are kept in crops/. Install it: {install_line(lang)}"
            )
        for k, v in {**SETTINGS, "debug_file": os.devnull}.items():
            self._lib.TessBaseAPISetVariable(self._api, k.encode(), v.encode())
        self._lock = threading.Lock()

    def recognize(self, img: np.ndarray, psm: int, timeout_s: float) -> tuple[str, list[int]]:
        lib, api = self._lib, self._api
        if api is None:
            raise OcrFailed("crashed", "Tesseract was closed")
        img = np.ascontiguousarray(img, dtype=np.uint8)
        with self._lock:
            lib.TessBaseAPISetPageSegMode(api, psm)
            lib.TessBaseAPISetImage(api, img.ctypes.data, img.shape[1], img.shape[0], 1, img.strides[0])
            lib.TessBaseAPISetSourceResolution(api, CROP_DPI)
            monitor = lib.TessMonitorCreate()
            try:
                lib.TessMonitorSetDeadlineMSecs(monitor, max(1, int(timeout_s * 1000)))
                start = time.perf_counter()
                rc = lib.TessBaseAPIRecognize(api, monitor)
                took = time.perf_counter() - start
            finally:
                lib.TessMonitorDelete(monitor)
            if rc != 0:
                lib.TessBaseAPIClear(api)
                if took >= timeout_s * 0.9:
                    raise OcrFailed("timeout", f"Tesseract took longer than {timeout_s:g} s on one crop")
                raise OcrFailed("crashed", "Tesseract could not read one crop")
            ptr = lib.TessBaseAPIGetUTF8Text(api)
            text = ctypes.string_at(ptr).decode("utf-8", "replace") if ptr else ""
            if ptr:
                lib.TessDeleteText(ptr)
            confs: list[int] = []
            arr = lib.TessBaseAPIAllWordConfidences(api)
            if arr:
                i = 0
                while arr[i] != -1:
                    confs.append(int(arr[i]))
                    i += 1
                lib.TessDeleteIntArray(arr)
            lib.TessBaseAPIClear(api)
        return text, confs

    def close(self) -> None:
        if getattr(self, "_api", None) is not None:
            self._lib.TessBaseAPIEnd(self._api)
            self._lib.TessBaseAPIDelete(self._api)
            self._api = None


# --------------------------------------------------------------------------- a process per crop


class _Command:
    """The ``tesseract`` program, run through pytesseract for each crop."""

    def __init__(self, cmd: str, lang: str, timeout_s: float):
        path = shutil.which(cmd) if os.sep not in cmd else (cmd if Path(cmd).is_file() and os.access(cmd, os.X_OK) else None)
        if path is None:
            raise FileNotFoundError(cmd)
        self.cmd = path
        self.lang = lang
        env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
        try:
            out = subprocess.run([path, "--version"], check=False, capture_output=True, timeout=max(5.0, timeout_s), env=env)
        except subprocess.TimeoutExpired:
            raise OcrUnavailable(f"Tesseract ({path}) did not answer `--version` within {max(5.0, timeout_s):g} s; reinstall it: {install_line(lang)}") from None
        except OSError as e:
            raise OcrUnavailable(f"Tesseract ({path}) cannot be started ({e.strerror}); reinstall it: {install_line(lang)}") from None
        first = (out.stdout or out.stderr).decode("utf-8", "replace").strip().splitlines()
        m = re.search(r"tesseract\s+v?(\d[\w.\-]*)", first[0] if first else "", re.IGNORECASE)
        if out.returncode != 0 or m is None:
            raise OcrUnavailable(
                f"Tesseract ({path}) does not work (`tesseract --version` exited with {out.returncode}); "
                f"reinstall it: {install_line(lang)}"
            )
        self.version = m.group(1)

    def recognize(self, img: np.ndarray, psm: int, timeout_s: float) -> tuple[str, list[int]]:
        import pytesseract

        _limit_threads()  # pytesseract passes this process's environment on
        pytesseract.pytesseract.tesseract_cmd = self.cmd
        config = f"--psm {psm} --dpi {CROP_DPI} " + " ".join(f"-c {k}={v}" for k, v in SETTINGS.items())
        try:
            data = pytesseract.image_to_data(img, lang=self.lang, config=config, timeout=timeout_s, output_type=pytesseract.Output.DICT)
        except pytesseract.TesseractNotFoundError:
            raise OcrFailed("crashed", f"Tesseract ({self.cmd}) is gone") from None
        except pytesseract.TesseractError as e:  # (a RuntimeError too: first)
            detail = (e.message or "").strip()[:200]
            raise OcrFailed("crashed", f"Tesseract exited with {e.status}" + (f": {detail}" if detail else "")) from None
        except RuntimeError as e:  # pytesseract's own timeout
            if "timeout" in str(e).lower():
                raise OcrFailed("timeout", f"Tesseract took longer than {timeout_s:g} s on one crop") from None
            raise OcrFailed("crashed", f"Tesseract failed: {e}") from None
        except (OSError, ValueError) as e:  # unreadable output from a broken program
            raise OcrFailed("crashed", f"Tesseract gave no usable output ({e})") from None
        lines: dict[tuple[int, int, int], list[str]] = {}
        confs: list[int] = []
        for word, conf, b, p, ln in zip(data["text"], data["conf"], data["block_num"], data["par_num"], data["line_num"]):
            word = str(word).strip()
            if not word:
                continue
            lines.setdefault((b, p, ln), []).append(word)
            c = float(conf)
            if c >= 0:
                confs.append(int(c))
        text = "\n".join(" ".join(ws) for _, ws in sorted(lines.items()))
        return text, confs

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- the engine


class TesseractEngine:
    """Tesseract behind `exitscan.ocr.OcrEngine`.

    ``cmd``: use this ``tesseract`` program (a process per crop); None: the library if it
    loads, else ``tesseract`` on PATH. Raises `OcrUnavailable` when neither is there, or the
    language data is missing; the message holds the install line.
    """

    name = "tesseract"

    def __init__(self, lang: str = "eng", timeout_s: float = 10.0, cmd: str | None = None, library: tuple[str, ...] | None = None):
        if not re.fullmatch(r"[A-Za-z_]+(\+[A-Za-z_]+)*", lang or ""):
            raise OcrUnavailable(f"--lang {lang!r}: give Tesseract language codes such as eng or eng+fra")
        self.lang = lang
        self.timeout_s = float(timeout_s)
        self._backend: _Library | _Command
        if cmd is None:
            try:
                self._backend = _Library(lang, library)
                self.how = "library"
            except FileNotFoundError:
                cmd = "tesseract"
        if cmd is not None:
            try:
                self._backend = _Command(cmd, lang, self.timeout_s)
                self.how = "program"
            except FileNotFoundError:
                raise OcrUnavailable(missing_message(lang)) from None
        self.version = self._backend.version

    def read(self, image: np.ndarray, lines: int = 0) -> OcrText:
        if image.size == 0:
            return OcrText("", 0.0, 0.0)
        start = time.perf_counter()
        psm = PSM_LINE if lines == 1 else PSM_BLOCK
        raw, confs = self._backend.recognize(image, psm, self.timeout_s)
        text = tidy(raw)
        conf = calibrated(float(np.mean(confs)) / 100.0, TRUSTED_CONF) if (confs and text) else 0.0
        return OcrText(text, conf, time.perf_counter() - start)

    def close(self) -> None:
        self._backend.close()

    def __repr__(self) -> str:
        return f"TesseractEngine(lang={self.lang!r}, version={self.version!r}, via {self.how})"


__all__ = ["TesseractEngine", "install_line", "missing_message", "tidy"]
