"""Where the course keeps what it downloads, prepares and trains: one cache folder."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The course's cache folder: `COURSE_CACHE_DIR`, else the user's cache folder."""
    env = os.environ.get("COURSE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import pooch  # imported lazily: importing lib stays cheap

    return Path(pooch.os_cache("gpt-course"))
