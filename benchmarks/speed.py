"""Speed benchmark: pages/s of `exitscan process`, against decoding alone, and peak memory.

What is measured (SPEC "Quality targets"; issues 3 and 4):

- pages/s of the installed ``exitscan process`` console script, run as a subprocess as a
  teacher runs it (start-up included), over a batch of ``--pages`` A4 pages of grey JPEG as a
  copier writes them (4 passes per page), at each of ``--dpis`` and ``--jobs``;
- the time to only decode the same files (``exitscan.load.load_page`` over every page, with
  the same number of worker processes, also a fresh subprocess), and the ratio process/decode
  (the target's); beside it, for reference, decoding each image in full (OpenCV, full
  resolution, grey): the loader reads a JPEG at half size, ~40% cheaper, so its ratio is the
  stricter one;
- CPU seconds per page of the whole process tree (less sensitive than wall time to other
  work on the machine);
- peak memory at ``--memory-pages`` pages: RSS of the whole process tree (the command, the
  fork server and its workers) sampled from /proc every ~50 ms; the peak of the sum, the
  peak of PSS summed (shared pages counted once), and the largest single process.

Every figure is the median over ``--runs`` runs. The targets are compared at the end and
each is printed PASS or MISS, as measured.

The scans: simulating a page takes seconds, so ``--sheets`` distinct sheets per resolution
are simulated once (copier profile, grey, fixed dpi, JPEG) into a cache folder, and a batch
of N pages is made of hard links to them under distinct names, so pages repeat: the reader
reports every later copy of a pass as a ``duplicate`` in problems.csv. Each copy is still
loaded, registered, identified and read in full (duplicates are only noticed by the parent
when the result arrives), so the reading work is what N distinct pages cost.

OCR: when ``exitscan process`` has a ``--no-ocr`` option, every row is run with it (OCR
off) and, with ``--with-ocr target`` (the default), the target's configuration (300 dpi, 2
jobs) also without it (OCR on; ``--with-ocr all``: every row; ``none``: no OCR-on runs).
OCR-on runs use the default engine (``auto``), or the one ``--ocr-engine`` names (``exitscan
process --ocr-engine``), to compare engines' pages/s; they count the drafts in results.csv, so
an engine that is not installed shows. An
``exitscan`` without ``--no-ocr`` has no OCR: its "with OCR" figures say "not available yet".

The code measured: others edit the working tree while a benchmark runs, so ``exitscan/``
and ``templates/`` are copied at the start and every command imports that snapshot (through
PYTHONPATH; ``--no-snapshot`` measures the live tree). speed.json records the commit, the
files changed since it and a hash of the sources measured.

    python benchmarks/speed.py [--pages 300] [--runs 3] [--dpis 200,300] [--jobs 1,2]
                               [--with-ocr target|all|none] [--ocr-engine auto|rapidocr|tesseract]
                               [--memory-pages 100,500]
                               [--out bench-out] [--quick]

See benchmarks/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PASSES_PER_PAGE = 4
#: Pages per PDF with ``--format pdf`` (a class's stack through the copier's feeder).
PDF_STACK = 30
MIB = 1024 * 1024
SAMPLE_SECONDS = 0.05
# Re-list the process tree, and read PSS (smaps_rollup: ~0.6 ms a process), only every 4th
# sample (~0.2 s), so that the sampler itself takes ~2% of one core, not ~10%.
TREE_EVERY = 4

# The targets (SPEC.md "Quality targets").
TARGET_PAGES_PER_S = 30.0  # 300-dpi A4 JPEG, OCR off, 2 cores
TARGET_PAGES_PER_S_OCR = 5.0  # OCR on
TARGET_RATIO = 2.0  # per-page work / decode time
TARGET_PEAK_BYTES = 1024 * MIB  # at 500 pages
TARGET_FLAT_GROWTH = 1.25  # peak at the largest batch / at the smallest (our reading of "flat")

QUICK = {"pages": 6, "runs": 1, "dpis": "200", "jobs": "1,2", "memory_pages": "3,6", "sheets": 2}


# --------------------------------------------------------------------------- the scans


def _sheet_plan(n_sheets: int) -> list[tuple[str, int, tuple[int, ...]]]:
    """(template, lesson index, sheets) stacks: about a third each of classic, ticks, criteria."""
    per = min(8, max(1, math.ceil(n_sheets / 3)))  # 28 pupils + 4 spares, 4-up: 8 sheets a lesson
    plan, left, li = [], n_sheets, 0
    while left > 0:
        take = min(per, left)
        plan.append((("classic", "ticks", "criteria")[li % 3], li, tuple(range(take))))
        left -= take
        li += 1
    return plan


def distinct_sheets(cache: Path, dpi: int, n_sheets: int, seed: int, fresh: bool = False) -> tuple[list[Path], float]:
    """Simulate ``n_sheets`` copier sheets (grey JPEG, ``dpi``) once into ``cache``.

    Returns the JPEG files and the seconds simulating took (0 when the cache was used).
    """
    folder = cache / f"copier-gray-{dpi}dpi-{n_sheets}sheets-seed{seed}"
    marker = folder / "done.json"
    if marker.exists() and not fresh:
        files = [folder / name for name in json.loads(marker.read_text())["files"]]
        if all(f.exists() for f in files):
            return files, 0.0
    if folder.exists():
        shutil.rmtree(folder)
    # The simulator is only needed when the cache is cold; it imports a lot.
    from exitscan.simulate import Stack, make_stacks
    from exitscan.simulate.batch import sample_lesson
    from exitscan.simulate.content import default_roster

    pupils = tuple(default_roster(28))
    settings = (("dpi", dpi), ("mode", "gray"))
    stacks = [
        Stack(
            f"{tpl}_{dpi}", tpl, sample_lesson(tpl, li), pupils, None, "a4", PASSES_PER_PAGE, sheets,
            "copier", "jpeg", settings=settings,
        )
        for tpl, li, sheets in _sheet_plan(n_sheets)
    ]
    t0 = time.perf_counter()
    make_stacks(folder, stacks, seed=seed, jobs=min(2, os.cpu_count() or 1))
    seconds = time.perf_counter() - t0
    files = sorted(p for p in folder.iterdir() if p.suffix == ".jpg")
    if len(files) != n_sheets:
        raise RuntimeError(f"simulated {len(files)} pages, expected {n_sheets}")
    marker.write_text(json.dumps({"files": [f.name for f in files], "dpi": dpi, "seed": seed}))
    return files, seconds


def build_batch(sources: list[Path], n_pages: int, folder: Path, fmt: str = "jpeg", dpi: int = 300) -> Path:
    """A folder of ``n_pages`` JPEGs, hard links (or copies) to ``sources`` in turn; or
    (``fmt="pdf"``) the same pages as PDFs of `PDF_STACK` pages each, every page one of those
    JPEGs, embedded as it is and filling the page, as a copier writes a scanned stack."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if fmt == "pdf":
        from PIL import Image
        from reportlab import rl_config
        from reportlab.pdfgen import canvas

        rl_config.useA85 = 0  # the JPEG's bytes as they are, not in ASCII85 (as copiers write them)

        for start in range(0, n_pages, PDF_STACK):
            c = canvas.Canvas(str(folder / f"stack_{start // PDF_STACK + 1:03d}.pdf"))
            for i in range(start, min(n_pages, start + PDF_STACK)):
                src = sources[i % len(sources)]
                with Image.open(src) as im:
                    w_pt, h_pt = im.width * 72.0 / dpi, im.height * 72.0 / dpi
                c.setPageSize((w_pt, h_pt))
                c.drawImage(str(src), 0, 0, w_pt, h_pt)  # a JPEG file is embedded as it is
                c.showPage()
            c.save()
        return folder
    for i in range(n_pages):
        src, dst = sources[i % len(sources)], folder / f"scan_{i + 1:04d}.jpg"
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    return folder


# --------------------------------------------------------------------------- measuring a process tree


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _tree(root: int) -> list[int]:
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _sample(pid: int, pss: bool = True) -> tuple[int, int, float] | None:
    """(RSS bytes, PSS bytes or 0, CPU seconds so far) of one process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            rss = int(fh.read().split()[1]) * _PAGE
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        f = stat[stat.rindex(b")") + 2 :].split()
        cpu = (int(f[11]) + int(f[12])) / _TICK  # utime, stime
        pss_bytes = 0
        if pss:
            try:
                with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
                    for line in fh:
                        if line.startswith(b"Pss:"):
                            pss_bytes = int(line.split()[1]) * 1024
                            break
            except OSError:
                pass
        return rss, pss_bytes, cpu
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class TreeRun:
    """One subprocess run: wall time and what the sampler saw of its process tree."""

    seconds: float
    returncode: int
    peak_rss_sum: int = 0
    peak_pss_sum: int = 0
    peak_single_rss: int = 0
    max_processes: int = 0
    cpu_seconds: float = 0.0
    samples: int = 0
    sampler_cpu_seconds: float = 0.0  # what measuring cost (the sampler thread's own CPU)
    stdout: str = field(default="", repr=False)
    stderr: str = field(default="", repr=False)


def run_tree(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> TreeRun:
    """Run ``cmd``, timing it, while sampling its whole process tree from /proc every ~50 ms."""
    cpu_by_pid: dict[int, float] = {}
    peaks = {"rss": 0, "pss": 0, "single": 0, "n": 0, "samples": 0, "sampler_cpu": 0.0}
    stop = threading.Event()

    def sampler(root: int) -> None:
        pids: list[int] = [root]
        while True:
            rss_sum = pss_sum = 0
            full = peaks["samples"] % TREE_EVERY == 0
            if full:
                pids = _tree(root)
            for pid in pids:
                s = _sample(pid, pss=full)
                if s is None:
                    continue
                rss, pss, cpu = s
                rss_sum += rss
                pss_sum += pss
                peaks["single"] = max(peaks["single"], rss)
                cpu_by_pid[pid] = max(cpu_by_pid.get(pid, 0.0), cpu)
            peaks["rss"] = max(peaks["rss"], rss_sum)
            peaks["pss"] = max(peaks["pss"], pss_sum)
            peaks["n"] = max(peaks["n"], len(pids))
            peaks["samples"] += 1
            if stop.wait(SAMPLE_SECONDS):
                peaks["sampler_cpu"] = time.thread_time()
                return

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    th = threading.Thread(target=sampler, args=(proc.pid,), daemon=True)
    th.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - t0
    stop.set()
    th.join()
    return TreeRun(
        seconds, proc.returncode, peaks["rss"], peaks["pss"], peaks["single"], peaks["n"],
        sum(cpu_by_pid.values()), peaks["samples"], peaks["sampler_cpu"], out, err,
    )


# --------------------------------------------------------------------------- the runs


def exitscan_script() -> Path:
    """The installed console script next to this interpreter (what a teacher runs)."""
    here = Path(sys.executable).parent / ("exitscan.exe" if os.name == "nt" else "exitscan")
    if here.exists():
        return here
    found = shutil.which("exitscan")
    if found is None:
        raise SystemExit("speed.py: the exitscan command is not installed next to this Python; pip install -e . first")
    return Path(found)


OCR_ARGS = {"off": ["--no-ocr"], "on": []}


def ocr_available(child: Child) -> bool:
    """Whether this exitscan reads handwriting at all (its `process` has a --no-ocr switch)."""
    cmd = [str(child.script), "process", "--help"]
    text = subprocess.run(cmd, capture_output=True, text=True, env=child.env, cwd=child.cwd, check=False).stdout
    return "--no-ocr" in text


def target_config(dpis: list[int], jobs_list: list[int]) -> tuple[int, int]:
    """The (dpi, jobs) the targets name: 300 dpi on 2 cores (or the nearest measured)."""
    return (300 if 300 in dpis else max(dpis)), (2 if 2 in jobs_list else max(jobs_list))


def account(out: Path, n_pages: int) -> dict:
    """What results.csv and problems.csv say about the batch: every page must be there."""
    pages: set[tuple[str, str]] = set()
    passes = drafts = 0
    kinds: dict[str, int] = {}
    with open(out / "results.csv", encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            passes += 1
            drafts += bool((row.get("next_step_text") or "").strip())
            pages.add((row["source"], row["page"]))
    with open(out / "problems.csv", encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
            pages.add((row["source"], row["page"]))
    return {
        "pages": n_pages,
        "pages_accounted": len(pages),
        "passes_read": passes,
        "ocr_drafts": drafts,
        "duplicates": kinds.pop("duplicate", 0),
        "other_problems": kinds,
        "passes_on_pages": PASSES_PER_PAGE * n_pages,
    }


@dataclass(frozen=True)
class Child:
    """How the measured commands run: the console script, and the environment and folder
    that make them import the code snapshot (if any)."""

    script: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None


def snapshot(dest: Path) -> tuple[dict[str, str], Path]:
    """Copy ``exitscan/`` and ``templates/`` (the package's data) to ``dest`` and compile it, so
    every run measures the code as it was at the start even while others edit the tree.
    Returns the environment (PYTHONPATH first) and a working folder for the commands."""
    import compileall

    root = Path(__file__).resolve().parents[1]
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(root / "exitscan", dest / "exitscan", ignore=ignore)
    if (root / "templates").is_dir():
        shutil.copytree(root / "templates", dest / "templates", ignore=ignore)
    compileall.compile_dir(dest / "exitscan", quiet=1)  # as pip does on install
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(dest), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    return env, dest


def check_child(child: Child, expect: Path | None) -> str:
    """Where the measured commands import exitscan from (must be the snapshot when there is one)."""
    r = subprocess.run(
        [sys.executable, "-c", "import exitscan; print(exitscan.__file__)"],
        capture_output=True, text=True, env=child.env, cwd=child.cwd, check=False,
    )
    where = r.stdout.strip()
    if expect is not None and not Path(where).resolve().is_relative_to(expect.resolve()):
        raise SystemExit(f"speed.py: the snapshot is not what runs (exitscan imports from {where!r})")
    return where


def process_once(child: Child, batch: Path, out: Path, jobs: int, extra: list[str], n_pages: int) -> dict:
    if out.exists():
        shutil.rmtree(out)
    cmd = [str(child.script), "process", str(batch), "--out", str(out), "--jobs", str(jobs), "-q", *extra]
    r = run_tree(cmd, child.env, child.cwd)
    if r.returncode != 0:
        raise RuntimeError(f"exitscan process exited {r.returncode}:\n{r.stderr[-2000:]}")
    rec = _run_record(r, n_pages)
    rec["accounted"] = account(out, n_pages)
    rec["summary"] = r.stdout.strip().splitlines()[0] if r.stdout.strip() else ""
    return rec


def decode_once(child: Child, batch: Path, jobs: int, n_pages: int, full: bool = False) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--decode-only", str(batch), "--decode-jobs", str(jobs)]
    cmd += ["--decode-full"] if full else []
    r = run_tree(cmd, child.env, child.cwd)
    if r.returncode != 0:
        raise RuntimeError(f"decoding exited {r.returncode}:\n{r.stderr[-2000:]}")
    rec = _run_record(r, n_pages)
    inner = json.loads(r.stdout.strip().splitlines()[-1])
    rec["decoded_pages"] = inner["pages"]
    rec["inner_seconds"] = round(inner["seconds"], 3)
    return rec


def _run_record(r: TreeRun, n_pages: int) -> dict:
    return {
        "seconds": round(r.seconds, 3),
        "pages_per_s": round(n_pages / r.seconds, 3),
        "cpu_seconds": round(r.cpu_seconds, 2),
        "peak_rss_sum_mib": round(r.peak_rss_sum / MIB, 1),
        "peak_pss_sum_mib": round(r.peak_pss_sum / MIB, 1),
        "peak_single_rss_mib": round(r.peak_single_rss / MIB, 1),
        "processes": r.max_processes,
        "samples": r.samples,
        "sampler_cpu_seconds": round(r.sampler_cpu_seconds, 2),
        "load_average": round(os.getloadavg()[0], 2),  # 1-min, at the end of the run
    }


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


# --------------------------------------------------------------------------- decode-only child


def _decode_init() -> None:
    os.environ["OMP_THREAD_LIMIT"] = "1"
    import cv2

    cv2.setNumThreads(1)


def _decode_task(task) -> int:
    from exitscan.load import load_page

    f, index = task
    return int(load_page(f, index).image.size)


def _decode_full_task(task) -> int:
    """Just decode the image, at its full resolution, in grey (OpenCV, from the file's bytes):
    the plain meaning of "the time it takes to decode the image". A PDF page (no image of its
    own to decode) is loaded as the pipeline loads it."""
    import cv2
    import numpy as np

    f, _index = task
    if f.path.suffix.lower() == ".pdf":
        return _decode_task(task)
    img = cv2.imdecode(np.frombuffer(f.path.read_bytes(), np.uint8), cv2.IMREAD_GRAYSCALE)
    return int(img.size) if img is not None else 0


def decode_only(folder: Path, jobs: int, full: bool = False) -> None:
    """Child mode: load_page over every page of ``folder`` with ``jobs`` processes: the same
    planning as the pipeline (`plan`), a fork-server pool of ``jobs`` workers with one thread
    each, one page per task (the floor that loading alone costs, start-up included)."""
    import multiprocessing as mp

    from exitscan.pipeline import plan

    t0 = time.perf_counter()
    tasks, _problems, _files = plan((folder,))
    task_fn = _decode_full_task if full else _decode_task
    if jobs <= 1 or len(tasks) <= 1:
        _decode_init()
        n = sum(1 for t in tasks if task_fn(t))
    else:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["exitscan.load"])
        with ctx.Pool(jobs, initializer=_decode_init, maxtasksperchild=200) as pool:
            n = sum(1 for px in pool.imap(task_fn, tasks, chunksize=1) if px)
    print(json.dumps({"pages": n, "seconds": time.perf_counter() - t0}))


# --------------------------------------------------------------------------- report


def _fmt(x: float, nd: int = 1) -> str:
    return f"{x:.{nd}f}"


def speed_table(rows: list[dict]) -> str:
    lines = [
        "| dpi | jobs | OCR | pages | pages/s | process s (min–max) | decode s | process/decode | CPU ms/page process | CPU ms/page decode | CPU process/decode | CPU ms/page full decode | CPU process/full decode | load |",
        "|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        secs = [x["seconds"] for x in r["runs"]]
        lines.append(
            f"| {r['dpi']} | {r['jobs']} | {r['ocr']} | {r['pages']} | {_fmt(r['pages_per_s'])} | "
            f"{_fmt(r['seconds'])} ({_fmt(min(secs))}–{_fmt(max(secs))}) | {_fmt(r['decode_seconds'])} | "
            f"{_fmt(r['ratio'], 2)}× | {r['cpu_ms_per_page']:.0f} | {r['decode_cpu_ms_per_page']:.0f} | "
            f"{_fmt(r['cpu_ratio'], 2)}× | {r.get('full_decode_cpu_ms_per_page', float('nan')):.0f} | "
            f"{_fmt(r.get('full_cpu_ratio', float('nan')), 2)}× | {_fmt(r['load_average'])} |"
        )
    return "\n".join(lines)


def memory_table(rows: list[dict]) -> str:
    lines = [
        "| pages | dpi | jobs | OCR | peak RSS sum MiB | peak PSS sum MiB | largest process MiB | processes | seconds |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['pages']} | {r['dpi']} | {r['jobs']} | {r['ocr']}{' (speed runs)' if r.get('from_speed_runs') else ''} | "
            f"{_fmt(r['peak_rss_sum_mib'])} | {_fmt(r['peak_pss_sum_mib'])} | "
            f"{_fmt(r['peak_single_rss_mib'])} | {r['processes']} | {_fmt(r['seconds'])} |"
        )
    return "\n".join(lines)


def targets_table(targets: list[dict]) -> str:
    lines = ["| target | measured | result |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['measured']} | {t['status']} |" for t in targets]
    return "\n".join(lines)


def check_targets(speed: list[dict], memory: list[dict], has_ocr: bool) -> list[dict]:
    out = []
    memory = [m for m in memory if not m.get("from_speed_runs")]

    def row(dpi: int, jobs: int, ocr: str) -> dict | None:
        return next((r for r in speed if r["dpi"] == dpi and r["jobs"] == jobs and r["ocr"] == ocr), None)

    r = row(300, 2, "off")
    out.append({
        "name": "pages_per_s",
        "target": f"≥ {TARGET_PAGES_PER_S:g} pages/s, 300 dpi, OCR off, 2 jobs",
        "measured": f"{r['pages_per_s']:.1f} pages/s" if r else "not measured (needs --dpis with 300 and --jobs with 2)",
        "status": ("PASS" if r["pages_per_s"] >= TARGET_PAGES_PER_S else "MISS") if r else "n/a",
    })
    off = [x for x in speed if x["ocr"] == "off"]
    worst = max(off, key=lambda x: x["ratio"], default=None)
    out.append({
        "name": "ratio",
        "target": f"process/decode ≤ {TARGET_RATIO:g}× (every row, OCR off)",
        "measured": (
            f"worst {worst['ratio']:.2f}× ({worst['dpi']} dpi, {worst['jobs']} jobs; CPU time {worst['cpu_ratio']:.2f}×)"
            if worst else "not measured"
        ),
        "status": ("PASS" if worst["ratio"] <= TARGET_RATIO else "MISS") if worst else "n/a",
    })
    m500 = next((m for m in memory if m["pages"] == 500), None)
    out.append({
        "name": "memory_500",
        "target": "500 pages < 1 GiB peak (RSS sum of the process tree)",
        "measured": f"{m500['peak_rss_sum_mib']:.0f} MiB" if m500 else "not measured (needs 500 in --memory-pages)",
        "status": ("PASS" if m500["peak_rss_sum_mib"] * MIB < TARGET_PEAK_BYTES else "MISS") if m500 else "n/a",
    })
    if len(memory) >= 2:
        lo, hi = min(memory, key=lambda m: m["pages"]), max(memory, key=lambda m: m["pages"])
        growth = hi["peak_rss_sum_mib"] / max(lo["peak_rss_sum_mib"], 1e-9)
        out.append({
            "name": "memory_flat",
            "target": f"memory flat: peak at {hi['pages']} pages ≤ {TARGET_FLAT_GROWTH:g}× peak at {lo['pages']}",
            "measured": f"{growth:.2f}× ({lo['peak_rss_sum_mib']:.0f} → {hi['peak_rss_sum_mib']:.0f} MiB)",
            "status": "PASS" if growth <= TARGET_FLAT_GROWTH else "MISS",
        })
    r = row(300, 2, "on")
    if has_ocr:
        drafts = r and min(x["accounted"]["ocr_drafts"] for x in r["runs"])
        out.append({
            "name": "pages_per_s_ocr",
            "target": f"with OCR ≥ {TARGET_PAGES_PER_S_OCR:g} pages/s (300 dpi, 2 jobs)",
            "measured": (
                (f"{r['pages_per_s']:.1f} pages/s" + ("" if drafts else " (but no OCR drafts in results.csv: engine missing?)"))
                if r else "not measured (needs 300 dpi and 2 jobs, and --with-ocr target or all)"
            ),
            "status": ("PASS" if r["pages_per_s"] >= TARGET_PAGES_PER_S_OCR and drafts else "MISS") if r else "n/a",
        })
    else:
        out.append({
            "name": "pages_per_s_ocr",
            "target": f"with OCR ≥ {TARGET_PAGES_PER_S_OCR:g} pages/s",
            "measured": "OCR: not available yet",
            "status": "n/a",
        })
    return out


def code_state(package: Path | None = None) -> dict:
    """The commit, the package's files changed since it (a shared working tree), and a hash of
    the package's sources (``package``: a snapshot's copy; default the working tree's)."""
    root = Path(__file__).resolve().parents[1]
    package = package or root / "exitscan"

    def git(*args: str) -> str:
        try:
            r = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.SubprocessError):
            return ""
        return r.stdout.rstrip() if r.returncode == 0 else ""

    digest = hashlib.sha256()
    for f in sorted(package.rglob("*.py")):
        digest.update(f.relative_to(package).as_posix().encode() + b"\0" + f.read_bytes())
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "changed": [line[3:] for line in git("status", "--porcelain", "--", "exitscan").splitlines()],
        "source_sha256": digest.hexdigest()[:12],  # of exitscan/**/*.py as measured
    }


# --------------------------------------------------------------------------- main


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=300, help="pages in the speed batch (default 300)")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure; medians are reported (default 3)")
    ap.add_argument(
        "--format", choices=("jpeg", "pdf"), default="jpeg",
        help="the scans: one JPEG a page (default), or PDFs of 30 JPEG pages each as copiers write them",
    )
    ap.add_argument("--dpis", default="200,300", help="scan resolutions (default 200,300)")
    ap.add_argument("--jobs", default="1,2", help="--jobs values for exitscan process (default 1,2)")
    ap.add_argument("--memory-pages", default="100,500", help="batch sizes for peak memory (default 100,500)")
    ap.add_argument("--memory-runs", type=int, default=None, help="runs per memory figure (default: --runs)")
    ap.add_argument("--memory-dpi", type=int, default=300, help="resolution of the memory batches (default 300)")
    ap.add_argument(
        "--with-ocr", choices=("target", "all", "none"), default="target",
        help="OCR-on runs: at the target's 300 dpi / 2 jobs only (default), every row, or none",
    )
    ap.add_argument(
        "--ocr-engine", default="auto",
        help="the engine of the OCR-on runs (exitscan process --ocr-engine; default auto: the best installed)",
    )
    ap.add_argument("--sheets", type=int, default=12, help="distinct simulated sheets per resolution (default 12)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", type=Path, default=Path("bench-out"), help="writes speed.json and speed.md here")
    ap.add_argument("--cache", type=Path, default=None, help="simulated sheets are kept here (default OUT/speed-cache)")
    ap.add_argument("--fresh", action="store_true", help="simulate the sheets again even if cached")
    ap.add_argument(
        "--no-snapshot", dest="snapshot", action="store_false",
        help="measure the working tree as it is at each run (default: a copy taken at the start)",
    )
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one run: a smoke test, not a measurement")
    ap.add_argument("--decode-only", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--decode-jobs", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--decode-full", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.decode_only is not None:
        decode_only(a.decode_only, a.decode_jobs, a.decode_full)
        return 0
    if a.quick:
        a.pages, a.runs, a.sheets = QUICK["pages"], QUICK["runs"], QUICK["sheets"]
        a.dpis, a.jobs, a.memory_pages = QUICK["dpis"], QUICK["jobs"], QUICK["memory_pages"]
        a.memory_dpi = _ints(a.dpis)[0]
    dpis, jobs_list, mem_pages = _ints(a.dpis), _ints(a.jobs), _ints(a.memory_pages)
    if a.runs < 1 or a.pages < 1 or a.sheets < 1 or not dpis or not jobs_list:
        ap.error("--runs, --pages, --sheets, --dpis and --jobs need positive values")
    if not Path("/proc/self/statm").exists():
        ap.error("peak memory is sampled from /proc: run this on Linux")

    started = time.perf_counter()
    date = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    tree_at_start = code_state()
    load_start = os.getloadavg()
    a.out.mkdir(parents=True, exist_ok=True)
    a.out = a.out.resolve()
    cache = (a.cache or a.out / "speed-cache").resolve()
    work = a.out / "speed-work"
    script = exitscan_script()
    if a.snapshot:
        env, snap = snapshot(work / "snapshot")
        child = Child(script, env, snap)
    else:
        snap, child = None, Child(script, None, work)
    work.mkdir(parents=True, exist_ok=True)
    imports_from = check_child(child, snap)
    code_at_start = code_state(snap / "exitscan") if snap else tree_at_start
    has_ocr = ocr_available(child)
    t_dpi, t_jobs = target_config(dpis, jobs_list)

    def modes_for(dpi: int, jobs: int) -> list[str]:
        if not has_ocr:
            return ["off"]
        on = a.with_ocr == "all" or (a.with_ocr == "target" and (dpi, jobs) == (t_dpi, t_jobs))
        return ["off", "on"] if on else ["off"]

    if has_ocr:
        ocr_note = (
            "OCR off: `--no-ocr`; OCR on: "
            + ("the default engine (auto) " if a.ocr_engine == "auto" else f"`--ocr-engine {a.ocr_engine}` ")
            + {"target": f"(at {t_dpi} dpi, {t_jobs} jobs only)", "all": "(every row)", "none": "(not run: --with-ocr none)"}[a.with_ocr]
        )
    else:
        ocr_note = "OCR: not available yet (`exitscan process` has no --no-ocr option), so every run is OCR off"
    print(f"exitscan: {script}", file=sys.stderr)

    sources: dict[int, list[Path]] = {}
    simulate_seconds = 0.0
    for dpi in sorted(set(dpis) | ({a.memory_dpi} if mem_pages else set())):
        print(f"simulating {a.sheets} distinct {dpi}-dpi sheets (cached in {cache}) ...", file=sys.stderr)
        sources[dpi], s = distinct_sheets(cache, dpi, a.sheets, a.seed, a.fresh)
        simulate_seconds += s

    speed: list[dict] = []
    for dpi in dpis:
        batch = build_batch(sources[dpi], a.pages, work / f"batch-{dpi}dpi-{a.pages}", a.format, dpi)
        for jobs in jobs_list:
            decode_runs, full_runs = [], []
            for _ in range(a.runs):
                decode_runs.append(decode_once(child, batch, jobs, a.pages))
                full_runs.append(decode_once(child, batch, jobs, a.pages, full=True))
            for ocr in modes_for(dpi, jobs):
                extra = (OCR_ARGS[ocr] + (["--ocr-engine", a.ocr_engine] if ocr == "on" and a.ocr_engine != "auto" else [])) if has_ocr else []
                runs = []
                for k in range(a.runs):
                    print(f"{dpi} dpi, {jobs} jobs, OCR {ocr}: run {k + 1}/{a.runs} ...", file=sys.stderr)
                    runs.append(process_once(child, batch, work / "out", jobs, extra, a.pages))
                secs, dsecs = _median(runs, "seconds"), _median(decode_runs, "seconds")
                speed.append({
                    "dpi": dpi,
                    "jobs": jobs,
                    "ocr": ocr,
                    "pages": a.pages,
                    "seconds": secs,
                    "pages_per_s": round(a.pages / secs, 3),
                    "decode_seconds": dsecs,
                    "decode_pages_per_s": round(a.pages / dsecs, 3),
                    "ratio": round(secs / dsecs, 3),
                    "cpu_ms_per_page": round(1000 * _median(runs, "cpu_seconds") / a.pages, 1),
                    "decode_cpu_ms_per_page": round(1000 * _median(decode_runs, "cpu_seconds") / a.pages, 1),
                    "cpu_ratio": round(_median(runs, "cpu_seconds") / max(_median(decode_runs, "cpu_seconds"), 1e-9), 3),
                    "full_decode_seconds": _median(full_runs, "seconds"),
                    "full_decode_cpu_ms_per_page": round(1000 * _median(full_runs, "cpu_seconds") / a.pages, 1),
                    "full_ratio": round(secs / _median(full_runs, "seconds"), 3),
                    "full_cpu_ratio": round(_median(runs, "cpu_seconds") / max(_median(full_runs, "cpu_seconds"), 1e-9), 3),
                    "load_average": _median(runs, "load_average"),
                    "peak_rss_sum_mib": _median(runs, "peak_rss_sum_mib"),
                    "peak_pss_sum_mib": _median(runs, "peak_pss_sum_mib"),
                    "peak_single_rss_mib": _median(runs, "peak_single_rss_mib"),
                    "processes": max(r["processes"] for r in runs),
                    "runs": runs,
                    "decode_runs": decode_runs,
                    "full_decode_runs": full_runs,
                })

    memory: list[dict] = []
    mem_jobs = max(jobs_list)
    mem_runs = a.memory_runs if a.memory_runs is not None else a.runs
    for n in mem_pages:
        batch = build_batch(sources[a.memory_dpi], n, work / f"batch-{a.memory_dpi}dpi-{n}", a.format, a.memory_dpi)
        runs = []
        for k in range(mem_runs):
            print(f"memory: {n} pages, {mem_jobs} jobs: run {k + 1}/{mem_runs} ...", file=sys.stderr)
            runs.append(process_once(child, batch, work / "out", mem_jobs, OCR_ARGS["off"] if has_ocr else [], n))
        memory.append({
            "pages": n,
            "dpi": a.memory_dpi,
            "jobs": mem_jobs,
            "ocr": "off",
            "seconds": _median(runs, "seconds"),
            "peak_rss_sum_mib": _median(runs, "peak_rss_sum_mib"),
            "peak_pss_sum_mib": _median(runs, "peak_pss_sum_mib"),
            "peak_single_rss_mib": _median(runs, "peak_single_rss_mib"),
            "processes": max(r["processes"] for r in runs),
            "runs": runs,
        })
    shutil.rmtree(work, ignore_errors=True)  # batches are hard links; the snapshot is in speed.json's hash
    # OCR-on peaks come free from the speed runs (the engine lives in the workers).
    for r in speed:
        if r["ocr"] == "on" and r["dpi"] == a.memory_dpi:
            keys = ("pages", "dpi", "jobs", "ocr", "seconds", "peak_rss_sum_mib", "peak_pss_sum_mib", "peak_single_rss_mib", "processes")
            memory.append({**{k: r[k] for k in keys}, "from_speed_runs": True})

    targets = check_targets(speed, memory, has_ocr)
    total = time.perf_counter() - started
    repeat_note = (
        f"Pages repeat: {a.sheets} distinct simulated sheets per resolution (copier, grey JPEG, A4, "
        f"{PASSES_PER_PAGE} passes a page) are hard-linked under distinct names, so later copies are "
        "reported as duplicates in problems.csv; every copy is still loaded and read in full "
        "(duplicates are only noticed by the parent), so the reading work is that of distinct pages."
        + (
            f" Format: PDFs of {PDF_STACK} pages, each page one of those JPEGs embedded as it is, as a copier writes them."
            if a.format == "pdf"
            else ""
        )
    )
    machine = {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
    }
    result = {
        "benchmark": "speed",
        "date": date,
        "code": code_at_start,  # what was measured (the snapshot's, or the tree's at the start)
        "tree_at_end": code_state(),
        "quick": a.quick,
        "machine": machine,
        "settings": {
            "pages": a.pages, "runs": a.runs, "dpis": dpis, "jobs": jobs_list, "memory_pages": mem_pages, "format": a.format,
            "memory_dpi": a.memory_dpi, "with_ocr": a.with_ocr, "ocr_engine": a.ocr_engine, "memory_runs": mem_runs, "sheets": a.sheets, "seed": a.seed, "passes_per_page": PASSES_PER_PAGE,
        },
        "command": str(script),
        "imports_from": imports_from,
        "snapshot": a.snapshot,
        "ocr": {"available": has_ocr, "with_ocr": a.with_ocr if has_ocr else "none", "note": ocr_note},
        "notes": [repeat_note, ocr_note],
        "speed": speed,
        "memory": memory,
        "targets": targets,
        "simulate_seconds": round(simulate_seconds, 1),
        "total_seconds": round(total, 1),
    }
    md = "\n\n".join([
        (
            f"### Speed ({result['date']}, commit {result['code']['commit'] or '?'}"
            f"{' + ' + str(len(result['code']['changed'])) + ' changed files in exitscan/' if result['code']['changed'] else ''}"
            f" (sources {result['code']['source_sha256']}{', snapshot' if a.snapshot else ''}), "
            f"{machine['cpus']} CPUs, load average {machine['load_average_start'][0]:.1f} at start"
            f"{', QUICK: not a measurement' if a.quick else ''})"
        ),
        speed_table(speed),
        memory_table(memory) if memory else "(no memory runs)",
        targets_table(targets),
        (
            f"Medians of {a.runs} run{'s' if a.runs != 1 else ''}; wall time of the `exitscan process` command including "
            f"start-up; decode: `load_page` over the same pages in a fresh process with the same jobs "
            f"(full decode, for reference: each file decoded whole, grey, by OpenCV, the same way). "
            f"CPU ms/page: user+system CPU of the whole process tree per page (less disturbed than wall time by "
            f"other work on the machine; load: 1-min load average). {repeat_note} {ocr_note}. "
            f"Took {total:.0f} s (simulating {simulate_seconds:.0f} s)."
        ),
    ])
    if result["tree_at_end"]["source_sha256"] != tree_at_start["source_sha256"]:
        if a.snapshot:
            md += (
                f"\n\nNote: exitscan/ changed in the working tree during the run (now {result['tree_at_end']['commit']}, "
                f"sources {result['tree_at_end']['source_sha256']}); every row measured the snapshot taken at the start."
            )
        else:
            md += (
                "\n\nWARNING: exitscan/ changed in the working tree during the run and --no-snapshot was given: "
                "the rows may not measure the same code."
            )
    print(md)
    (a.out / "speed.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    (a.out / "speed.md").write_text(md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
