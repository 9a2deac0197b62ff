"""Run options shared by the ONNX embedders."""

from __future__ import annotations

SMALL_CALL = 8  # texts: a query-time call; its activation memory goes back to the pool's minimum afterwards


def shrink_after_run() -> object:
    """onnxruntime run options that shrink the CPU memory arena after the run. A server embeds one question at a
    time for hours; without this the arena only grows (measured by the soak test, README)."""
    import onnxruntime as ort

    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options
