"""Any local sentence-transformers model as an embedder (``st:<name-or-path>``), strictly offline.

The name is handed to ``SentenceTransformer`` unchanged, so it may be a directory or a model already in the
Hugging Face cache. ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` are set before the import so nothing is fetched.
Models whose name contains ``e5`` get the ``query: ``/``passage: `` prefixes they were trained with; other
models use their own configured ``query``/``document`` prompts, if any. The model loads on first use.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from arrival.errors import ModelError

log = logging.getLogger(__name__)

_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


class SentenceTransformerEmbedder:
    """A sentence-transformers model on CPU; thread-safe lazy loading, unit float32 rows."""

    def __init__(self, name_or_path: str, threads: int = 0, batch_size: int = 64) -> None:
        name = name_or_path.strip()
        if not name:
            raise ModelError("sentence-transformers spec needs a model name or path: st:<name-or-path>")
        if batch_size < 1:
            raise ModelError(f"batch size must be at least 1, got {batch_size}")
        self._name = name
        self._threads = threads
        self._batch_size = batch_size
        self._e5 = "e5" in name.lower()
        self._model: Any = None
        self._dim: int | None = None
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return f"st:{self._name}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._get_model()
        assert self._dim is not None
        return self._dim

    def _get_model(self) -> Any:
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                self._model = self._load()
        return self._model

    def _load(self) -> Any:
        for key, value in _OFFLINE_ENV.items():
            os.environ.setdefault(key, value)
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelError(
                f"cannot load sentence-transformers model '{self._name}' offline: {_one_line(exc)} "
                "(install the 'st' extra)"
            ) from None
        if self._threads > 0:
            torch.set_num_threads(self._threads)
        quiet = _ProgressBarsOff()
        try:
            with quiet:
                model = SentenceTransformer(self._name, device="cpu")
        except Exception as exc:  # loaders raise OSError, ValueError, FileNotFoundError, HF errors...
            reason = _one_line(exc)
            if "huggingface.co" in reason and not Path(self._name).expanduser().exists():
                reason = "not a local directory and not in the Hugging Face cache (nothing is downloaded)"
            raise ModelError(f"cannot load sentence-transformers model '{self._name}' offline: {reason}") from None
        get_dim = getattr(model, "get_embedding_dimension", None) or getattr(
            model, "get_sentence_embedding_dimension", None
        )
        dim = get_dim() if get_dim is not None else None
        if not dim:
            probe = model.encode(["dimension probe"], convert_to_numpy=True, show_progress_bar=False)
            dim = int(np.asarray(probe).shape[-1])
        self._dim = int(dim)
        log.debug("loaded sentence-transformers model %s (dim %d, e5 prefixes: %s)", self._name, self._dim, self._e5)
        return model

    def _prompt_name(self, model: Any, candidates: tuple[str, ...]) -> str | None:
        if self._e5:
            return None
        prompts = getattr(model, "prompts", None) or {}
        for name in candidates:
            if prompts.get(name):
                return name
        return None

    def _encode(self, texts: list[str], prefix: str, prompt_candidates: tuple[str, ...]) -> np.ndarray:
        model = self._get_model()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._e5:
            texts = [prefix + t for t in texts]
        kwargs: dict[str, Any] = {}
        prompt_name = self._prompt_name(model, prompt_candidates)
        if prompt_name:
            kwargs["prompt_name"] = prompt_name
        try:
            vecs = model.encode(
                texts,
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
                **kwargs,
            )
        except Exception as exc:
            raise ModelError(f"sentence-transformers model '{self._name}' failed: {_one_line(exc)}") from None
        return np.ascontiguousarray(vecs, dtype=np.float32).reshape(len(texts), self.dim)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(list(texts), "passage: ", ("document", "passage"))

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(list(texts), "query: ", ("query",))


class _ProgressBarsOff:
    """Silence transformers' tqdm bars (e.g. "Loading weights") while a model loads; restore afterwards."""

    def __init__(self) -> None:
        self._was_on = False

    def __enter__(self) -> None:
        try:
            from transformers.utils import logging as tlog

            self._was_on = tlog.is_progress_bar_enabled()
            if self._was_on:
                tlog.disable_progress_bar()
        except Exception:  # older/newer transformers without these helpers: nothing to silence
            self._was_on = False

    def __exit__(self, *exc: object) -> None:
        if self._was_on:
            from transformers.utils import logging as tlog

            tlog.enable_progress_bar()
