"""A config dataclass field that owns one setting: its default and its help text, as TRL's configs' fields do.

Each component's config dataclass (`components/<name>/config.py`) owns the settings of that component; the
component's signature and the pipeline's repeat them as literals (KFP reads both from source) and
`tests/test_settings_owners.py` holds the copies equal to the owner. `kfp_distill/interfaces/parameters.py` says
which owner each pipeline parameter has.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, field
from typing import Literal

HELP = "help"
SCOPE = "scope"
# Where a setting is exposed: an input of its component and a parameter of the pipeline, an input of its
# component only, or neither (set in code, by tests and benchmarks).
Scope = Literal["pipeline", "component", "internal"]


def setting(default=MISSING, *, help: str, scope: Scope = "pipeline") -> Field:  # noqa: A002 (TRL's name)
    """A dataclass field with `default` (none: required) and `help`, one paragraph, in its metadata.

    Args:
        default: The setting's default; leave it out for a required setting.
        help: What the setting means, as the component's and the pipeline's docstrings, the READMEs' input
            lists, docs/parameters.md and `kfp-distill run --help` give it.
        scope: `pipeline`: an input of the component and a parameter of the pipeline; `component`: an input of
            the component only; `internal`: neither.
    """
    return field(default=default, metadata={HELP: " ".join(help.split()), SCOPE: scope})
