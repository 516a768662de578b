"""Case counts of property-based tests: bounded in `make test`, 100,000 under `make fuzz`."""

from __future__ import annotations

import os

FUZZ = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"


def fuzz_examples(ci: int) -> int:
    """`ci` cases in `make test`; 100,000 in the release fuzz run."""
    return 100_000 if FUZZ else ci
