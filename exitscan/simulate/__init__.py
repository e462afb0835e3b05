"""Scan simulator: real generated passes, filled in like pupils do, scanned like schools do.

Passes come from the project's own generator (`exitscan.render`, what ``exitscan generate``
runs) and are rasterised with pypdfium2 at 300 dpi. Each pupil then marks their pass by hand
(`pupil`, `marks`, `ink`, `handwriting`): a loose, off-centre, sometimes double or elliptical
circle, a tick, a cross or colouring-in, in pencil, ballpoint or felt tip; or the hard cases —
nothing, two faces, one scribbled out and another circled; plus ticked options, a next-step
sentence on the ruled lines and a name on spares. The sheet is then printed (colour, or a
black-and-white laser) and scanned (`scan`) by a profile, and packed (`pack`) as a teacher's
folder holds it. Everything is seeded (`numpy.random.default_rng`): the same seed gives
byte-identical files and truth.

Profiles (`PROFILES`): ``clean`` (no scanning: 300 dpi, lossless, upright — for tests),
``copier`` (200/300 dpi, +-3 deg, colour or grey JPEG), ``bw-copier`` (1-bit, CCITT G4),
``low-quality`` (150 dpi, +-10 deg, heavy JPEG), ``phone`` (perspective, desk, uneven light,
shadow, +-15 deg), ``mono-printer`` (printed on a B/W laser, then copied).

API
---
``make_page(marks, *, template, per_page, paper, profile, orientation, seed, ...) -> SimPage``
    One sheet filled in exactly as asked and scanned in memory. ``marks`` is one `PassMarks`
    per pass (or one for all; None: the pupils decide). ``SimPage.image`` is RGB uint8
    (H, W, 3), grey uint8 (H, W) or black-and-white bool (H, W, True = white);
    ``SimPage.truth`` is a `truth.PageTruth`; ``SimPage.scan.jpeg`` the device's JPEG bytes.
    Examples::

        make_page(PassMarks.clear("green", "circle", "pencil"), profile="copier", seed=1)
        make_page(PassMarks.corrected("red", "orange"), orientation=180)
        make_page([PassMarks.blank(), PassMarks.multiple("green", "red")], per_page=2)
        make_page(PassMarks(marks=(Mark("orange", "tick", "felt-tip", colour="purple"),),
                            ticks=(TickMark(2),), text="Use commas in a list.", name="Róisín"),
                  template="ticks", pupils=[], spares=1)
        make_page(PassMarks.criteria("green", None, "red"), template="criteria")

``make_batch(out_dir, n_passes, *, template, per_page, paper, profile, formats, duplex, seed,
case_mix, roster, jobs, orientation) -> dict``
    A teacher's folder of scans (``formats``: pdf, tiff, jpeg, png or mixed; ``template`` and
    ``profile`` may be ``mixed`` too) and its ``truth.json`` (schema in `truth`); returns the
    truth document. ``jobs`` > 1 runs pages in worker processes; the output does not change.

``make_stacks(out_dir, stacks, seed, ...)`` / `Stack`
    Full control over scanning jobs (which sheets of which lesson, device, format, forced
    marks, fixed device settings); ``make_demo`` writes ``sample_scans/`` with it.

``validate_truth(data, folder=None) -> list[str]``, ``load_truth(path)``
    Check a truth document (and that its files exist).

Command line::

    python -m exitscan.simulate --out DIR --passes N --profile P --template T --per-page K \\
        --seed S [--format pdf|tiff|jpeg|png|mixed] [--duplex] [--roster CSV] [--jobs N]
    python -m exitscan.simulate --demo --out sample_scans
"""

from exitscan.simulate.batch import (
    SimPage,
    Stack,
    make_batch,
    make_demo,
    make_page,
    make_stacks,
)
from exitscan.simulate.marks import Mark
from exitscan.simulate.pupil import PassMarks, TickMark
from exitscan.simulate.scan import PROFILES, Pose, Session, sample_pose, sample_session
from exitscan.simulate.truth import load_truth, validate_truth

__all__ = [
    "PROFILES",
    "Mark",
    "PassMarks",
    "Pose",
    "Session",
    "SimPage",
    "Stack",
    "TickMark",
    "load_truth",
    "make_batch",
    "make_demo",
    "make_page",
    "make_stacks",
    "sample_pose",
    "sample_session",
    "validate_truth",
]
