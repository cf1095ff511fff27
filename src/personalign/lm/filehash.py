"""Content hashes of model files, remembered so a multi-hundred-MB file is hashed once.

The sha256 of a file is stored in ``cache_dir("hashes")/<sha1 of the absolute path>.json`` together
with the file's size and modification time; a later call with the same size and mtime reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from personalign.paths import cache_dir

_CHUNK = 8 << 20


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def file_sha256(path: str | Path, *, remember: bool = True) -> str:
    """Hex sha256 of the file at ``path``, reusing a remembered value while size and mtime match."""
    path = Path(path).resolve()
    stamp = _stamp(path)
    memo = cache_dir("hashes") / (hashlib.sha1(str(path).encode()).hexdigest() + ".json")
    if remember and memo.is_file():
        try:
            saved = json.loads(memo.read_text())
            if saved.get("path") == str(path) and all(saved.get(k) == v for k, v in stamp.items()):
                return str(saved["sha256"])
        except (OSError, ValueError, KeyError):
            pass  # a damaged memo is simply recomputed
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    if remember:
        tmp = memo.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"path": str(path), "sha256": value, **stamp}))
        os.replace(tmp, memo)
    return value


def files_sha256(paths: Iterable[str | Path]) -> str:
    """One hex sha256 over several files (names and contents, in sorted-name order)."""
    digest = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        digest.update(p.name.encode() + b"\0" + file_sha256(p).encode() + b"\n")
    return digest.hexdigest()
