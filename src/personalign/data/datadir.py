"""Resolving the datasets folder for loaders (explicit ``data_dir``, ``PERSONALIGN_DATA_DIR``, or
``shared/data`` beside the checkout), with an error that says how to point at a local copy."""

from __future__ import annotations

from pathlib import Path

from personalign.data.errors import DataError
from personalign.data.readers import DATA_DIR_HINT
from personalign.paths import DataDirNotFound, shared_data_dir


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """The datasets root: ``data_dir`` if given (it must exist), else :func:`shared_data_dir`."""
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise DataError(f"data folder not found ({DATA_DIR_HINT})", path=path)
        return path
    try:
        found = shared_data_dir(required=True)
    except DataDirNotFound as e:
        raise DataError(str(e)) from None
    assert found is not None
    return found


def dataset_path(data_dir: str | Path | None, *parts: str) -> Path:
    """A path inside the datasets root; a missing dataset folder raises with instructions."""
    root = resolve_data_dir(data_dir)
    path = root.joinpath(*parts)
    if not path.exists():
        raise DataError(
            f"dataset not found under the data folder {root} (expected {'/'.join(parts)}; {DATA_DIR_HINT})",
            path=path,
        )
    return path
