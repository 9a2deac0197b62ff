"""One validated settings object: defaults < arrival.toml < ARRIVAL_* environment variables < CLI flags."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from arrival.errors import SettingsError


def _default_cache() -> Path:
    return Path(os.path.expanduser("~/.cache/arrival"))


class Settings(BaseSettings):
    """Everything a run can be configured with. A misspelt key fails loudly (extra="forbid")."""

    model_config = SettingsConfigDict(
        env_prefix="ARRIVAL_",
        extra="forbid",
        toml_file=os.environ.get("ARRIVAL_CONFIG", "arrival.toml"),
        validate_assignment=True,
    )

    home: Path = Field(default=Path(".arrival"), description="Index home (ARRIVAL_HOME)")
    database_url: str = Field(
        default="", pattern=r"^$|^postgres(ql)?://",
        description="PostgreSQL with pgvector holding the index (ARRIVAL_DATABASE_URL); '' = the embedded index "
                    "folder under home")
    cache: Path = Field(default_factory=_default_cache, description="Model cache (ARRIVAL_CACHE)")
    model: str = Field(default="use-m3", description="Embedder: use-m3 | st:<name-or-path> | hash:<dim>")
    second_model: str = Field(
        default="auto", description="Second encoder: auto (e5-small beside use-m3, none otherwise) | e5-small | none")
    ranker: bool = Field(default=True, description="Order hybrid results with the learned ranker when it fits")
    fold_translations: bool = Field(
        default=True, description="Show the passage in the question's language first, its translation folded")
    threads: int = Field(default=0, ge=0, description="Intra-op threads for the embedder; 0 = all cores")
    workers: int = Field(default=0, ge=0, le=64, description="PDF parsing processes; 0 = one per core")
    worker_memory_mb: int = Field(default=4096, ge=256, description="Memory cap of one parsing process")
    batch_size: int = Field(default=32, ge=1, le=4096, description="Texts per embedding batch")
    chunk_size: int = Field(default=800, ge=100, le=20000, description="Characters per chunk")
    chunk_overlap: int = Field(default=120, ge=0, description="Characters shared by neighbouring chunks")
    k: int = Field(default=5, ge=1, le=200, description="Passages returned")
    candidates: int = Field(default=100, ge=10, le=5000, description="Candidates per retriever before fusion")
    retriever: str = Field(default="hybrid", pattern="^(bm25|dense|fusion|hybrid)$")
    keyword_weight_same: float = Field(default=0.3, ge=0, le=5, description="BM25 weight, same-language chunks")
    keyword_weight_translated: float = Field(
        default=0.3, ge=0, le=5, description="BM25 weight of the query translated through the corpus lexicon")
    keyword_weight_cross: float = Field(
        default=0.1, ge=0, le=5, description="BM25 weight of the untranslated query on other-language chunks")
    question_list_penalty: float = Field(
        default=0.1, ge=0, le=1, description="Score taken off passages made mostly of questions")
    context_weight: float = Field(
        default=0.6, ge=0, le=5, description="Weight of the neighbouring passages' vectors in a passage's dense score")
    per_doc_cap: int = Field(default=0, ge=0, description="Most passages from one document in a result (0 = no cap)")
    duplicate_cosine: float = Field(
        default=0.95, ge=0, le=1,
        description="A passage this similar (vector cosine) to a better-ranked one is folded into it (0 = keep all)")
    max_pdf_mb: int = Field(default=200, ge=1, description="Largest PDF accepted")
    max_pages: int = Field(default=5000, ge=1, description="Most pages read from one PDF")
    max_page_chars: int = Field(default=200_000, ge=1000, description="Longest page text kept")
    llm: str = Field(default="", description="ollama:<model> | openai:<model> | llamacpp:<path.gguf>; '' = extractive")
    llm_base_url: str = Field(default="", description="Base URL for openai-compatible servers")
    password: str = Field(default="", description="Password for the chat when set (ARRIVAL_PASSWORD)")

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def second_model_spec(second: str, primary_id: str) -> str:
    """The second encoder's spec ("" for none): "auto" puts the e5 encoder beside the default USE embedder and
    nothing beside another one (a test's hash embedder, a local sentence-transformers model)."""
    if second == "auto":
        return "e5-small" if primary_id == "use-m3" else ""
    return "" if second in ("", "none") else second


def for_backend(settings: Settings, backend: str | None) -> Settings:
    """The settings with the backend a command line chose: 'embedded' ignores ARRIVAL_DATABASE_URL, 'postgres'
    requires it; None keeps the settings' own choice."""
    if backend == "embedded":
        return settings.model_copy(update={"database_url": ""})
    if backend == "postgres" and not settings.database_url:
        raise SettingsError("--backend postgres needs ARRIVAL_DATABASE_URL=postgresql://... (or database_url in "
                            "arrival.toml)")
    return settings


def load_settings(**overrides: Any) -> Settings:
    """Build settings; overrides (CLI flags) win. `None` values are ignored. Errors become SettingsError."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        raise SettingsError(f"invalid setting {where}: {first.get('msg')}") from None
