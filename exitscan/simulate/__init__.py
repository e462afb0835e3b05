"""Scan simulator: real generated passes, filled in like pupils do, scanned like schools do.

(placeholder docstring; completed below)
"""

from exitscan.simulate.batch import SimPage, Stack, make_batch, make_demo, make_page, make_stacks
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
