"""The preflight step's report: what the checks found, as Markdown the pipeline UI shows, and the refusal."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kfp_distill._implementation.preflight import Preflight, PreflightError, preflight

logger = logging.getLogger("kfp_distill.preflight")


def to_markdown(found: Preflight) -> str:
    """The report: the verdict, then the problems and the notes, one item each."""
    if found.problems:
        count = "1 problem" if len(found.problems) == 1 else f"{len(found.problems)} problems"
        verdict = f"Refused before anything was spent: {count}."
    elif found.notes:
        verdict = "Nothing found that would fail after money is spent."
    else:
        verdict = "Nothing found that would fail after money is spent, and nothing to note."
    lines = ["# Preflight", "", verdict]
    for heading, items in (("Problems", found.problems), ("Notes: settings without effect as given", found.notes)):
        if items:
            lines += ["", f"## {heading}", "", *(f"- {item}" for item in items)]
    return "\n".join(lines) + "\n"


def check_and_report(settings: Mapping[str, Any], report_path: str | os.PathLike) -> Preflight:
    """Checks a job's settings, writes the report and logs the notes; refuses the job on any problem.

    Args:
        settings: Values by the names in `preflight.SETTINGS`.
        report_path: Where the Markdown report is written, problems or not.

    Returns:
        What the checks found: no problems, maybe notes.

    Raises:
        PreflightError: Listing every problem, after the report is written.
    """
    found = preflight(settings)
    Path(report_path).write_text(to_markdown(found), encoding="utf-8")
    for note in found.notes:
        logger.warning(note)
    if found.problems:
        raise PreflightError(found.problems)
    return found
