"""File helpers shared by the writers."""
from __future__ import annotations

import os


def publish(tmp: str, dest) -> None:
    """Moves a finished temp file into place with the permissions a normal file would get.

    ``tempfile.mkstemp`` creates files readable by the owner only; an exported model is meant to be
    copied to devices and shared, so it gets ``0666 & ~umask`` like any file the user creates.
    """
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, dest)
