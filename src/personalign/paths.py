"""Where personalign keeps caches and finds the shared research data.

* ``PERSONALIGN_CACHE``: cache root (converted models, LM-call cache, embeddings). Default:
  ``$XDG_CACHE_HOME/personalign`` or ``~/.cache/personalign``.
* ``PERSONALIGN_DATA_DIR``: root of the public datasets in their original layouts. Default: the
  first of ``./shared/data``, ``../shared/data`` (relative to the working directory, then to this
  checkout) that exists.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """The cache root (or a sub-folder of it), created on demand."""
    root = os.environ.get("PERSONALIGN_CACHE")
    if root:
        base = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "personalign"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


class DataDirNotFound(FileNotFoundError):
    """The shared data folder could not be located."""


def shared_data_dir(required: bool = True) -> Path | None:
    """Locate the datasets folder (see module docstring); raise with instructions if missing."""
    env = os.environ.get("PERSONALIGN_DATA_DIR")
    if env:
        path = Path(env).expanduser()
        if path.is_dir():
            return path
        raise DataDirNotFound(f"PERSONALIGN_DATA_DIR={env} is not a folder")
    here = Path(__file__).resolve()
    candidates = [Path.cwd() / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    candidates += [p / "shared" / "data" for p in here.parents]
    for c in candidates:
        if c.is_dir():
            return c
    if not required:
        return None
    raise DataDirNotFound(
        "could not find the datasets folder (looked for shared/data beside and above the working "
        "directory). Point at a local copy with --data-dir PATH or PERSONALIGN_DATA_DIR=PATH."
    )
