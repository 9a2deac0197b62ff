"""arrival: multilingual search and cited answers over migration-policy PDFs.

The package is laid out as the pipeline: `arrival.ingest` (PDF -> pages -> chunks), `arrival.index` (embed, store,
retrieve), `arrival.assistant` (answers, chat), `arrival.eval` (questions, metrics, benchmarks). Each is a
top-level folder of the repository, linked here. This folder itself holds what every layer shares: `settings`,
`types`, `errors`, and the command line (`cli`), which sits above everything and is imported by nothing.
"""

__version__ = "0.2.0"
