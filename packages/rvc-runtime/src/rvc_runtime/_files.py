"""File modes for outputs written through a private temp file or folder."""

from __future__ import annotations

import os
from pathlib import Path


def public_mode(path: str | os.PathLike[str]) -> None:
    """Give ``path`` the mode any other output would get from the user's umask (typically 0644
    for a file, 0755 for a folder, and for a folder its files too): ``mkstemp``/``mkdtemp`` and
    safetensors create private (0600/0700) ones. Call it on the temp path before the rename."""
    mask = _umask()
    p = Path(path)
    if p.is_dir():
        for f in p.iterdir():
            f.chmod(0o666 & ~mask)
        p.chmod(0o777 & ~mask)
    else:
        p.chmod(0o666 & ~mask)


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: the classic read-by-swapping
    os.umask(mask)
    return mask
