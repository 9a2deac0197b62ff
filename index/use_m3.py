"""The default embedder: Universal Sentence Encoder multilingual v3, quantized ONNX (512 dims).

The graph takes raw UTF-8 strings (its SentencePiece tokenizer is an onnxruntime-extensions custom op), so
there are no prefixes and no tokenizer on our side. The session is created lazily on first use.

Notes from measuring the model:

* It is dynamically quantized, so activation scales are computed over the whole batch: the same text gets a
  very slightly different vector (cosine typically > 0.998) depending on what it is batched with, never on its position.
* Cost is proportional to each text's own length (padding is cheap: sorting a batch by length did not help),
  and CPU time per passage *rises* with batch size (bs 8: ~400 passages per CPU-second for 800-character
  passages, bs 128: ~260) while memory grows ~5-6 MB per 800-character row. Small batches win, so batches are
  cut at ``batch_size`` rows or ``BATCH_CHARS`` padded characters, whichever comes first.
* There is no internal truncation and cost grows faster than linearly with length (about 0.2 s and +50 MB for
  one 20,000-character text, 2.7 s and +500 MB for 100,000), so inputs are cut at ``MAX_CHARS``.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from arrival.errors import ModelError
from arrival.index.models import USE_M3_ID, use_m3_path
from arrival.index.onnx_run import SMALL_CALL, shrink_after_run

log = logging.getLogger(__name__)

DIM = 512
DEFAULT_BATCH_SIZE = 16
MAX_CHARS = 20_000
BATCH_CHARS = 16_000
_INPUT = "inputs"
_OUTPUT = "outputs"


def _custom_ops_library() -> str:
    """The path of onnxruntime-extensions' operator library (the model's tokenizer runs as one of its ops), found
    without importing the package: its __init__ imports transformers and torch (3.6 s and hundreds of MB at the
    first question of a server, measured at a million passages), none of which the library needs."""
    import importlib.machinery
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime_extensions")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"_extensions_pydll{suffix}"
            if path.is_file():
                return str(path)
    try:  # an unusual layout: ask the package itself
        from onnxruntime_extensions import get_library_path
    except ImportError as exc:
        raise ModelError(f"use-m3 needs onnxruntime and onnxruntime-extensions: {exc}") from None
    return str(get_library_path())


class UseM3Embedder:
    """USE multilingual v3 through onnxruntime. Thread-safe; the session is created on first embed."""

    def __init__(
        self,
        cache: Path,
        threads: int = 0,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        max_chars: int = MAX_CHARS,
        batch_chars: int = BATCH_CHARS,
    ) -> None:
        self._path = use_m3_path(cache)
        if not self._path.is_file():
            raise ModelError(f"embedding model use-m3 is not in {cache}: run 'arrival models fetch'")
        if batch_size < 1:
            raise ModelError(f"batch size must be at least 1, got {batch_size}")
        self._threads = threads if threads and threads > 0 else (os.cpu_count() or 1)
        self._batch_size = batch_size
        self._max_chars = max(1, max_chars)
        self._batch_chars = max(1, batch_chars)
        self._session: Any = None
        self._input = _INPUT
        self._output = _OUTPUT
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return USE_M3_ID

    @property
    def dim(self) -> int:
        return DIM

    @property
    def path(self) -> Path:
        return self._path

    def _get_session(self) -> Any:
        if self._session is not None:
            return self._session
        with self._lock:
            if self._session is None:
                self._session = self._create_session()
        return self._session

    def _create_session(self) -> Any:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelError(f"use-m3 needs onnxruntime and onnxruntime-extensions: {exc}") from None
        so = ort.SessionOptions()
        so.register_custom_ops_library(_custom_ops_library())
        so.intra_op_num_threads = self._threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(self._path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"cannot load use-m3 from {self._path}: {reason}") from None
        inputs = session.get_inputs()
        outputs = session.get_outputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(string)":
            raise ModelError(f"{self._path} is not the use-m3 model: unexpected inputs")
        if not outputs or outputs[0].shape[-1] != DIM:
            raise ModelError(f"{self._path} is not the use-m3 model: output is not {DIM}-dimensional")
        self._input = inputs[0].name
        self._output = outputs[0].name
        log.debug("use-m3 session ready (%d threads): %s -> %s", self._threads, self._input, self._output)
        return session

    def _batches(self, texts: list[str]) -> list[list[int]]:
        """Split indices into consecutive batches bounded by row count and by padded characters."""
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0
        for i in range(len(texts)):
            n = max(1, len(texts[i]))
            if current and (
                len(current) >= self._batch_size or max(longest, n) * (len(current) + 1) > self._batch_chars
            ):
                batches.append(current)
                current, longest = [], 0
            current.append(i)
            longest = max(longest, n)
        if current:
            batches.append(current)
        return batches

    def _embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        session = self._get_session()
        clipped = [t if len(t) <= self._max_chars else t[: self._max_chars] for t in texts]
        if log.isEnabledFor(logging.DEBUG):
            cut = sum(1 for t in texts if len(t) > self._max_chars)
            if cut:
                log.debug("use-m3: %d text(s) cut to %d characters", cut, self._max_chars)
        out = np.empty((len(clipped), DIM), dtype=np.float32)
        options = shrink_after_run() if len(clipped) <= SMALL_CALL else None
        for batch in self._batches(clipped):
            feed = np.array([clipped[i] for i in batch], dtype=object)
            try:
                vecs = session.run([self._output], {self._input: feed}, options)[0]
            except Exception as exc:  # onnxruntime raises its own exception types
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ModelError(f"use-m3 failed on a batch of {len(batch)} text(s): {reason}") from None
            out[batch] = np.asarray(vecs, dtype=np.float32).reshape(len(batch), DIM)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        out[norms[:, 0] == 0, 0] = 1.0  # never happens with this model; keeps rows unit-length regardless
        return out

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._embed(list(texts))

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._embed(list(texts))
