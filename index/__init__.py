"""Embeddings, the FAISS + SQLite + BM25 index, and retrieval."""
