"""Files of an MLflow run's local artifacts, written as MLflow's client writes them.

Used by the direct SQLite writer (:mod:`~vaesweep.tracking.mlflow_sqlite`): a run's artifact
URI (``file:///.../<run id>/artifacts``) is a folder on this disk, and its files are copied
there whole (a temporary name, then renamed: MLflow's UI never serves half a file). Image
grids follow ``MlflowClient.log_image(key=, step=)`` of MLflow 3.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import numpy as np

#: Longest side of the compressed copy of a logged image (MLflow's COMPRESSED_IMAGE_SIZE).
COMPRESSED_SIZE = 256
#: The characters MLflow takes in an image's key.
_IMAGE_KEY = re.compile(r"[a-zA-Z0-9_\-./ ]+")


class NotDirect(RuntimeError):
    """What vaesweep does not write directly: the caller uses MLflow's client instead."""


def local_folder(artifact_uri: str) -> Path:
    """The folder of a local artifact URI (``file:///...`` or a plain path); anything else
    (``s3://``, ``mlflow-artifacts:``, a server's) is :class:`NotDirect`."""
    parsed = urllib.parse.urlparse(artifact_uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(urllib.request.url2pathname(parsed.path))
    if artifact_uri and parsed.scheme == "":
        return Path(artifact_uri)
    raise NotDirect(f"the artifacts live at {artifact_uri!r}, not on this machine's disk")


def copy_file(source: Path, folder: Path) -> None:
    """``source`` into ``folder`` (created), under its own name."""
    folder.mkdir(parents=True, exist_ok=True)
    _copy_whole(source, folder / source.name)


def copy_folder(source: Path, folder: Path) -> None:
    """Every file under ``source`` into ``folder``, at the same relative paths."""
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        target = folder / file.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy_whole(file, target)


def _copy_whole(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        shutil.copy2(source, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_image(artifacts: Path, key: str, image: np.ndarray, step: int) -> list[Path]:
    """A grid (uint8, H x W or H x W x C) at ``step`` in a run's ``artifacts`` folder.

    As MLflow's ``log_image(key=, step=)``: ``images/<key>+step+<step>+timestamp+<ms>+<uuid>
    .png`` (``/`` in the key written ``~``) and the same name ending ``+compressed.webp``, at
    most :data:`COMPRESSED_SIZE` pixels a side, which the UI's image panel shows. Returns
    both paths.
    """
    from PIL import Image

    if not _IMAGE_KEY.fullmatch(key):
        raise ValueError(f"the image key {key!r} has characters MLflow does not take")
    picture = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    width, height = picture.size
    if width > height:
        size = (COMPRESSED_SIZE, int(height * (COMPRESSED_SIZE / width)))
    else:
        size = (int(width * (COMPRESSED_SIZE / height)), COMPRESSED_SIZE)
    stamp = int(time.time() * 1000)
    stem = f"{key.replace('/', '~')}+step+{step}+timestamp+{stamp}+{uuid.uuid4()}"
    folder = artifacts / "images"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, version in ((f"{stem}.png", picture), (f"{stem}+compressed.webp", None)):
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".", suffix=name, delete=False) as f:
            tmp = Path(f.name)
        try:
            if version is None:
                version = picture.resize(size)
            version.save(tmp, format=name.rpartition(".")[2].upper())
            os.replace(tmp, folder / name)
        finally:
            tmp.unlink(missing_ok=True)
        written.append(folder / name)
    return written
