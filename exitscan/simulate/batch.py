"""One scanned page for a test, or a teacher's folder of scans for a benchmark, with truth.

`make_page` fills one sheet exactly as asked and scans it in memory. `make_batch` plans
lessons for a class, lets every pupil fill in their pass, scans the stacks under a profile
and writes the files and ``truth.json``. `make_stacks` is the machinery under both (and
under the demo set, `demo_stacks`): a `Stack` is one scanning job — some sheets of one
lesson's print run, one device, one file (or one file per page for JPEG/PNG).

Determinism: everything random comes from ``numpy.random.default_rng`` seeded with the
batch seed and the stack/page's position, so the same seed gives byte-identical files and
truth whatever ``jobs`` is.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from exitscan.roster import Lesson, Pupil, load_roster
from exitscan.simulate import content
from exitscan.simulate.pack import encoding_of, write_image, write_pdf, write_tiff
from exitscan.simulate.printing import (
    RENDER_DPI,
    PrintRun,
    mono_laser,
    pass_to_sheet_px,
    print_run,
    render_sheet,
)
from exitscan.simulate.pupil import FilledPass, PassMarks, fill_pass, random_pass_marks
from exitscan.simulate.scan import (
    PROFILES,
    Pose,
    Scan,
    Session,
    back_of,
    get_profile,
    sample_pose,
    sample_session,
    scan_sheet,
)
from exitscan.simulate.truth import FileTruth, PageTruth, PassTruth, to_json, write_truth
from exitscan.template import available_templates

FIRST_LESSON_DATE = dt.date(2026, 11, 23)
FORMAT_CHOICES = ("pdf", "tiff", "jpeg", "png")
#: Which devices a "mixed" batch uses, and how often.
MIXED_PROFILES: dict[str, float] = {"copier": 0.35, "bw-copier": 0.2, "low-quality": 0.15, "phone": 0.15, "mono-printer": 0.15}
MIXED_FORMATS: dict[str, float] = {"pdf": 0.45, "tiff": 0.2, "jpeg": 0.25, "png": 0.1}
_SUFFIX = {"pdf": ".pdf", "tiff": ".tif", "jpeg": ".jpg", "png": ".png"}


# --------------------------------------------------------------------------- one page


@dataclass
class SimPage:
    """A simulated scanned page: the pixels a reader would load, and what is on them."""

    scan: Scan
    truth: PageTruth

    @property
    def image(self) -> np.ndarray:
        """RGB uint8 (H, W, 3), grey uint8 (H, W) or black-and-white bool (H, W), True = white."""
        return self.scan.image

    @property
    def dpi(self) -> int:
        return self.scan.dpi

    def to_pil(self) -> Image.Image:
        im = Image.fromarray(self.image)
        im.info["dpi"] = (self.dpi, self.dpi)
        return im


def _slot_matrix(run: PrintRun, slot: int) -> np.ndarray:
    s = run.layout.slots[slot]
    return np.array([[s.scale, 0, s.x], [0, s.scale, s.y], [0, 0, 1]], np.float64)


def _pass_truth(run: PrintRun, slot: int, filled: FilledPass, sheet_to_page: np.ndarray) -> PassTruth:
    tpl = run.template
    h = sheet_to_page @ _slot_matrix(run, slot)
    h = h / h[2, 2]
    w_mm, h_mm = tpl.size
    pts = np.array([[0, 0, 1], [w_mm, 0, 1], [w_mm, h_mm, 1], [0, h_mm, 1]], np.float64) @ h.T
    corners = pts[:, :2] / pts[:, 2:3]
    bbox = [*corners.min(axis=0), *corners.max(axis=0)]
    return PassTruth(
        serial=-1,
        slot=slot,
        student_id="",
        student_name="",
        class_name=run.lesson.class_name,
        lesson=run.lesson.lesson,
        date=run.lesson.date,
        lesson_key="",
        template=tpl.name,
        spare=True,
        case="",
        rating=None,
        review=False,
        criteria=None,
        criteria_cases=None,
        marks=filled.marks,
        ticks=filled.ticks,
        tick_marks=filled.tick_marks,
        next_step=filled.next_step,
        next_step_lines=filled.next_step_lines,
        writing=filled.writing,
        spare_name=filled.spare_name,
        bbox=[round(float(v), 1) for v in bbox],
        corners=[[round(float(x), 2), round(float(y), 2)] for x, y in corners],
        homography=[[round(float(v), 8) for v in row] for row in h],
    )


def _blotted(filled: FilledPass) -> bool:
    """Whether a face was coloured in so loosely (a stray fill) that the colouring covers its
    label and the clear space around it: at 1.6-2.3x the face's radius it is as big as the
    simulator's own scribbling-out (1.2-1.8x), or bigger, and looks the same: a person should look."""
    return any(m["kind"] == "fill" and m.get("stray") for m in filled.marks)


def _with_reading(t: PassTruth, run: PrintRun, slot_pass, filled: FilledPass) -> PassTruth:
    code = slot_pass.code
    if run.template.is_per_criterion:
        cases = [c for c, _ in filled.rows]
        case = next((c for c in cases if c != "clear"), "clear")
        rating, criteria, criteria_cases = None, [r for _, r in filled.rows], cases
    else:
        case, rating = filled.rows[0]
        criteria = criteria_cases = None
    return replace(
        t,
        serial=code.serial,
        student_id=code.student_id,
        student_name=slot_pass.name,
        lesson_key=code.lesson_key,
        spare=code.is_spare,
        case=case,
        rating=rating,
        review=case != "clear" or _blotted(filled),
        criteria=criteria,
        criteria_cases=criteria_cases,
    )


@dataclass
class _Sheet:
    """A scanned front (and optional back), and the truth of the passes on it."""

    front: Scan
    passes: list[PassTruth]
    pose: Pose
    back: Scan | None = None
    back_pose: Pose | None = None


def _scan_one_sheet(
    run: PrintRun,
    sheet: int,
    marks: list[PassMarks],
    session: Session,
    pose: Pose,
    rng: np.random.Generator,
    back: bool,
) -> _Sheet:
    img = render_sheet(run, sheet, RENDER_DPI)
    profile = get_profile(session.profile)
    if profile.mono_printer:
        img = mono_laser(img, rng, RENDER_DPI)
    on_sheet = run.passes_on(sheet)
    filled = []
    for (slot, ps), pm in zip(on_sheet, marks):
        a = pass_to_sheet_px(run.layout, slot, RENDER_DPI)
        filled.append(fill_pass(img, run.template, run.lesson, pm, a, ps.is_spare, rng))
    front = scan_sheet(img, run.layout.size, session, pose, rng)
    truths = [
        _with_reading(_pass_truth(run, slot, f, front.sheet_to_page), run, ps, f)
        for (slot, ps), f in zip(on_sheet, filled)
    ]
    out = _Sheet(front, truths, pose)
    if back:
        bp = replace(pose, skew_deg=-pose.skew_deg, shift_mm=(-pose.shift_mm[0], pose.shift_mm[1]))
        out.back = scan_sheet(back_of(img, rng), run.layout.size, session, bp, rng)
        out.back_pose = bp
    return out


def _page_truth(page: int, kind: str, sheet: int | None, back_of_page: int | None, scan: Scan, session: Session, pose: Pose, passes: list[PassTruth]) -> PageTruth:
    return PageTruth(
        page=page,
        kind=kind,
        sheet=sheet,
        back_of=back_of_page,
        profile=session.profile,
        printer="mono-laser" if get_profile(session.profile).mono_printer else "colour",
        orientation=pose.orientation,
        skew_deg=round(pose.skew_deg, 3),
        dpi=int(scan.dpi),
        mode=scan.mode,
        size_px=[int(scan.size[0]), int(scan.size[1])],
        encoding=encoding_of(scan),
        jpeg_quality=scan.jpeg_quality,
        passes=passes,
    )


def sample_lesson(template: str, index: int = 0, class_name: str = "P3B") -> Lesson:
    """The ``index``-th lesson of a class on ``template`` (dated a Monday in November 2026 on)."""
    pool = content.lessons_for(template)
    les = pool[index % len(pool)]
    date = FIRST_LESSON_DATE + dt.timedelta(days=7 * (index // len(pool)) + index % 5)
    return replace(les, class_name=class_name, date=date.isoformat(), template=template)


def make_page(
    marks: PassMarks | list[PassMarks | None] | None = None,
    *,
    template: str = "classic",
    per_page: int = 1,
    paper: str = "a4",
    profile: str = "clean",
    orientation: int | None = 0,
    seed: int = 0,
    lesson: Lesson | None = None,
    pupils: list[Pupil] | None = None,
    spares: int | None = None,
    sheet: int = 0,
    session: Session | None = None,
    pose: Pose | None = None,
    case_mix: dict[str, float] | None = None,
) -> SimPage:
    """Fill in and scan one sheet, in memory.

    ``marks``: one `PassMarks` per pass on the sheet (a single one for ``per_page=1``); a
    None entry, or ``marks=None``, lets the pupil decide (seeded, see `random_pass_marks`).
    ``pupils`` defaults to the demo class of twelve (``[]`` prints spares only); ``lesson``
    to the template's first sample lesson. ``orientation`` None draws one from the profile;
    ``session``/``pose`` fix the device settings/placement exactly (see `scan.sample_session`).
    """
    rng = np.random.default_rng([seed, 0x5EED])
    lesson = lesson or sample_lesson(template, 0)
    people = content.demo_pupils() if pupils is None else pupils
    run = print_run(template, lesson, people, spares, paper, per_page)
    on_sheet = run.passes_on(sheet) if 0 <= sheet < run.sheets else []
    if not on_sheet:
        raise ValueError(f"sheet {sheet} does not exist; this print run has {run.sheets}")
    if isinstance(marks, PassMarks):
        given: list[PassMarks | None] = [marks] * len(on_sheet)  # the same on every pass
    else:
        given = list(marks or [])
    if len(given) > len(on_sheet):
        raise ValueError(f"{len(given)} PassMarks for a sheet of {len(on_sheet)} passes")
    specs = []
    for i, (_, ps) in enumerate(on_sheet):
        pm = given[i] if i < len(given) else None
        specs.append(pm if pm is not None else random_pass_marks(run.template, run.lesson, rng, case_mix, ps.is_spare))
    session = session or sample_session(profile, rng)
    pose = pose or sample_pose(session.profile, rng, orientation)
    done = _scan_one_sheet(run, sheet, specs, session, pose, rng, back=False)
    return SimPage(done.front, _page_truth(1, "pass", sheet, None, done.front, session, pose, done.passes))


# --------------------------------------------------------------------------- stacks and batches


@dataclass(frozen=True)
class Stack:
    """One scanning job: ``sheets`` of one lesson's print run through one device into files.

    ``orientation``: how the stack went in (None: drawn from the profile); a sheet now and
    then is turned another way. ``marks``: (serial, PassMarks) pairs fixing what a pass holds.
    ``flip``: (sheet, orientation) pairs fixing single sheets' orientation.
    """

    name: str
    template: str
    lesson: Lesson
    pupils: tuple[Pupil, ...]
    spares: int | None
    paper: str
    per_page: int
    sheets: tuple[int, ...]
    profile: str
    format: str
    duplex: bool = False
    orientation: int | None = None
    marks: tuple[tuple[int, PassMarks], ...] = ()
    flip: tuple[tuple[int, int], ...] = ()
    backs: tuple[int, ...] | None = None  # with duplex: only these sheets get a back (None: all)
    settings: tuple[tuple[str, object], ...] = ()  # fixed `Session` fields, e.g. (("dpi", 200),)


@dataclass(frozen=True)
class _Job:
    run: PrintRun  # made once by the parent (the PDF travels; workers don't regenerate it)
    container: str
    sheet: int
    marks: tuple[PassMarks, ...]
    session: Session
    pose: Pose
    seed: tuple[int, ...]
    back: bool


def _run_job(job: _Job) -> _Sheet:
    rng = np.random.default_rng(list(job.seed))
    done = _scan_one_sheet(job.run, job.sheet, list(job.marks), job.session, job.pose, rng, job.back)
    if job.container in ("pdf", "jpeg"):  # these files take the device's JPEG as it is
        done.front = done.front.lean()
        done.back = done.back.lean() if done.back is not None else None
    return done


def _pick(mix: dict, rng: np.random.Generator):
    keys = list(mix)
    p = np.array([mix[k] for k in keys], np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _plan(stack: Stack, index: int, seed: int, case_mix: dict[str, float] | None) -> tuple[PrintRun, list[_Job]]:
    rng = np.random.default_rng([seed, index, 0])
    run = print_run(stack.template, stack.lesson, list(stack.pupils), stack.spares, stack.paper, stack.per_page)
    bad = [s for s in stack.sheets if not 0 <= s < run.sheets]
    if bad:
        raise ValueError(f"stack {stack.name}: sheets {bad} do not exist (the run has {run.sheets})")
    session = replace(sample_session(stack.profile, rng), **dict(stack.settings))
    base = stack.orientation if stack.orientation is not None else sample_pose(stack.profile, rng).orientation
    forced = dict(stack.marks)
    flips = dict(stack.flip)
    profile = get_profile(stack.profile)
    jobs = []
    for k, sheet in enumerate(stack.sheets):
        o = base
        if sheet in flips:
            o = flips[sheet]
        elif profile.name not in ("clean", "phone") and rng.random() < 0.08:
            o = int(rng.choice([x for x in (0, 90, 180, 270) if x != base]))
        if profile.phone:
            o = int(rng.choice([0, 0, 0, 90, 270, 180]))  # phones turn the photo as they like
        marks = []
        for _slot, ps in run.passes_on(sheet):
            pm = forced.get(ps.code.serial)
            marks.append(pm if pm is not None else random_pass_marks(run.template, run.lesson, rng, case_mix, ps.is_spare))
        pose = sample_pose(stack.profile, rng, o)
        back = stack.duplex and not profile.phone and (stack.backs is None or sheet in stack.backs)
        jobs.append(_Job(run, stack.format, sheet, tuple(marks), session, pose, (seed, index, k + 1), back))
    return run, jobs


def make_stacks(
    out_dir: Path,
    stacks: list[Stack],
    seed: int = 0,
    case_mix: dict[str, float] | None = None,
    jobs: int = 1,
    options: dict | None = None,
) -> dict:
    """Scan ``stacks`` into ``out_dir`` and write ``truth.json``; returns the truth document.

    Stacks are scanned and written one at a time, so memory holds one stack's pages at most.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plans = [_plan(st, i, seed, case_mix) for i, st in enumerate(stacks)]
    n_jobs = sum(len(js) for _, js in plans)
    pool = ProcessPoolExecutor(max_workers=jobs) if jobs > 1 and n_jobs > 1 else None
    files: list[FileTruth] = []
    photo_no = [2041]
    try:
        for st, (run, js) in zip(stacks, plans):
            done = list(pool.map(_run_job, js, chunksize=1)) if pool is not None else [_run_job(j) for j in js]
            files.extend(_write_stack(out_dir, st, run, js, done, photo_no))
    finally:
        if pool is not None:
            pool.shutdown()
    data = to_json(seed, options or {"stacks": [st.name for st in stacks]}, files)
    write_truth(out_dir / "truth.json", data)
    return data


def _write_stack(
    out_dir: Path, st: Stack, run: PrintRun, js: list[_Job], done: list[_Sheet], photo_no: list[int]
) -> list[FileTruth]:
    """Pack one stack's scanned pages into its file(s); the truth of each file."""
    pages: list[tuple[Scan, PageTruth]] = []
    for job, sh in zip(js, done):
        n = len(pages) + 1
        pages.append((sh.front, _page_truth(n, "pass", job.sheet, None, sh.front, job.session, sh.pose, sh.passes)))
        if sh.back is not None and sh.back_pose is not None:
            pages.append((sh.back, _page_truth(n + 1, "blank", None, n, sh.back, job.session, sh.back_pose, [])))
    key = run.passes[0].code.lesson_key
    if st.format in ("pdf", "tiff"):
        path = out_dir / f"{st.name}{_SUFFIX[st.format]}"
        (write_pdf if st.format == "pdf" else write_tiff)(path, [s for s, _ in pages])
        return [FileTruth(path.name, st.format, st.profile, st.template, key, [t for _, t in pages])]
    out = []
    for i, (sc, t) in enumerate(pages, start=1):
        if get_profile(st.profile).phone:
            stem = f"IMG_{photo_no[0]:04d}"
            photo_no[0] += 1
        else:
            stem = f"{st.name}_p{i:02d}"
        path = out_dir / f"{stem}{_SUFFIX[st.format]}"
        write_image(path, sc, st.format)
        # One page per file: a back's front is the file before it, not a page of its own file.
        out.append(FileTruth(path.name, st.format, st.profile, st.template, key, [replace(t, page=1, back_of=None)]))
    return out


def _roster(roster: list[Pupil] | Path | str | None) -> list[Pupil]:
    if roster is None:
        return content.default_roster(28)
    if isinstance(roster, (str, Path)):
        return load_roster(Path(roster))
    return list(roster)


def make_batch(
    out_dir: Path | str,
    n_passes: int = 40,
    *,
    template: str = "classic",
    per_page: int = 4,
    paper: str = "a4",
    profile: str = "copier",
    formats: str = "pdf",
    duplex: bool = False,
    seed: int = 0,
    case_mix: dict[str, float] | None = None,
    roster: list[Pupil] | Path | str | None = None,
    jobs: int = 1,
    orientation: int | None = None,
) -> dict:
    """Write a teacher's folder of about ``n_passes`` scanned passes and its ``truth.json``.

    Lessons follow one another for the class in ``roster`` (a CSV path, `Pupil`s, or a
    default class of 28): each lesson prints a pass per pupil plus spares to fill the last
    sheet, and is scanned as one stack (one PDF/TIFF, or one JPEG/PNG per page) until
    ``n_passes`` (rounded up to whole sheets) are scanned. ``template``, ``profile`` and
    ``formats`` may be ``"mixed"`` (chosen per stack). Returns the truth document.
    """
    if n_passes < 1:
        raise ValueError("n_passes must be at least 1")
    if template != "mixed" and template not in available_templates():
        raise ValueError(f"unknown template {template!r}; use {', '.join(available_templates())} or mixed")
    if profile != "mixed":
        get_profile(profile)
    if formats != "mixed" and formats not in FORMAT_CHOICES:
        raise ValueError(f"unknown format {formats!r}; use {', '.join(FORMAT_CHOICES)} or mixed")
    pupils = tuple(_roster(roster))
    rng = np.random.default_rng([seed, 0xBA7C])
    sheets_left = -(-n_passes // per_page)
    stacks: list[Stack] = []
    li = 0
    while sheets_left > 0:
        tpl = ("classic", "ticks", "criteria")[li % 3] if template == "mixed" else template
        prof = _pick(MIXED_PROFILES, rng) if profile == "mixed" else profile
        if formats == "mixed":
            fmt = "jpeg" if prof == "phone" and rng.random() < 0.85 else _pick(MIXED_FORMATS, rng)
        else:
            fmt = formats
        spares = (-len(pupils)) % per_page or per_page
        n_sheets = -(-(len(pupils) + spares) // per_page)
        take = min(n_sheets, sheets_left)
        stacks.append(
            Stack(
                name=f"scan_{li + 1:03d}",
                template=tpl,
                lesson=sample_lesson(tpl, li),
                pupils=pupils,
                spares=spares,
                paper=paper,
                per_page=per_page,
                sheets=tuple(range(take)),
                profile=prof,
                format=fmt,
                duplex=duplex,
                orientation=orientation,
            )
        )
        sheets_left -= take
        li += 1
    options = {
        "n_passes": n_passes,
        "template": template,
        "per_page": per_page,
        "paper": paper,
        "profile": profile,
        "formats": formats,
        "duplex": duplex,
        "case_mix": case_mix,
        "roster_size": len(pupils),
        "orientation": orientation,
    }
    return make_stacks(Path(out_dir), stacks, seed, case_mix, jobs, options)


# --------------------------------------------------------------------------- the demo set


def demo_stacks() -> list[Stack]:
    """The committed ``sample_scans/`` set: ~12 pages across devices, formats and templates."""
    pupils = tuple(content.demo_pupils())
    classic, ticks, criteria = sample_lesson("classic", 0), sample_lesson("ticks", 1), sample_lesson("criteria", 2)
    hard = (
        (1, PassMarks.multiple("green", "orange", instrument="felt-tip", text="I think I did it but not all of it.")),
        (2, PassMarks.blank()),
        (3, PassMarks.corrected("red", "orange", instrument="pencil", text="Remember capital letters at the start of a sentence.")),
    )
    return [
        # A colour copier, 4-up classic passes, duplex on: one sheet and its blank back.
        Stack(
            "copier_colour_classic", "classic", classic, pupils, 4, "a4", 4, (0,), "copier", "pdf",
            duplex=True, orientation=0, marks=hard, settings=(("dpi", 200), ("mode", "rgb")),
        ),
        # Black-and-white copier, 2-up ticks passes, one sheet upside down, G4 TIFF.
        Stack("bw_ticks", "ticks", ticks, pupils, 2, "a4", 2, (0, 1, 6), "bw-copier", "tiff", orientation=0, flip=((1, 180),)),
        # The criteria template through a poor scanner, as single JPEG files.
        Stack("lowq_criteria", "criteria", criteria, pupils, 0, "a4", 2, (0, 3), "low-quality", "jpeg", orientation=90),
        # Two phone photos of single classic passes.
        Stack(
            "phone_classic", "classic", classic, pupils, 0, "a4", 1, (4, 7), "phone", "jpeg",
            settings=(("photo_long_side", 2048), ("jpeg_quality", 82)),
        ),
        # Printed on a black-and-white laser, then copied; US Letter, 2-up, as a PDF.
        Stack(
            "mono_letter", "classic", sample_lesson("classic", 1), pupils, 0, "letter", 2, (1, 5), "mono-printer", "pdf",
            orientation=180, settings=(("dpi", 200), ("mode", "gray")),
        ),
        # A spare pass (write-in name) scanned to PNG.
        Stack("spare_png", "classic", sample_lesson("classic", 2), pupils, 2, "a4", 2, (6,), "bw-copier", "png", orientation=0),
    ]


def make_demo(out_dir: Path | str, seed: int = 2026, jobs: int = 1) -> dict:
    """Write the demo set (see `demo_stacks`) and its truth into ``out_dir``."""
    stacks = demo_stacks()
    return make_stacks(Path(out_dir), stacks, seed, None, jobs, {"demo": True, "stacks": [s.name for s in stacks]})


__all__ = [
    "PROFILES",
    "SimPage",
    "Stack",
    "make_batch",
    "make_demo",
    "make_page",
    "make_stacks",
]
