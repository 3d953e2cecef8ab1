"""Entry-point wrapper shared by the ``python -m model.X`` / ``viz.X`` commands."""

from __future__ import annotations

import sys
from collections.abc import Callable


def run_cli(main: Callable[[], int | None]) -> None:
    """Run ``main``; a user error (bad file, unknown name, missing data) prints one line, not a traceback.

    CheckpointError is a ValueError, so a wrong or broken checkpoint lands here too.
    """
    try:
        code = main()
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    sys.exit(code or 0)
