"""Generic graph passes that make an exported program delegable to XNNPACK, owned by the ExecuTorch target.

A method knows no backend: its model is written as its authors wrote it (NAFNet's channel
LayerNorm with ``mean(1)``, Restormer's ``F.normalize`` of transposed attention, ``chunk`` gates,
``nn.LayerNorm`` on tokens...). ExecuTorch's XNNPACK partitioner takes only some forms of those
operators (``mean`` over H, W of a 4-D tensor with ``keepdim``; ``pow`` with exponent 2 as an
int; static ``slice_copy``) and leaves the rest on portable kernels, cutting the graph into
delegate islands. These passes rewrite, on the ``torch.export`` graph and before partitioning,
each such form into an output-equal form the partitioner takes:

==========================  ==============================================================
pass                        rewrite
==========================  ==============================================================
``split_to_slices``         ``chunk`` / ``split`` / ``split_with_sizes`` / ``unbind`` -> static slices
``reductions``              ``mean`` / ``sum`` / ``var`` / ``linalg_vector_norm`` / ``adaptive_avg_pool2d(1)``:
                            over H, W -> global average pooling (keepdim); over channels of
                            NCHW -> 1x1 convolution with constant weights; over trailing dims ->
                            a linear layer with constant weights (a reduction XNNPACK runs as GEMM)
``strided_slices``          ``x[:, k::s]`` (even/odd channels) -> reshape to ``(n / s, s)``, unit-step slice
``repeat_interleave``       ``repeat_interleave(x, r, dim)`` -> a broadcasting multiply by ones on a new inner dim
``repeats``                 ``repeat`` (tile) -> identity (all factors 1) or a broadcasting multiply by ones
``layer_norm``              ``layer_norm`` over trailing dims -> the same arithmetic with the
                            reductions above (``rsqrt`` of the variance, affine)
``powers``                  ``square`` / ``pow(x, 2)`` -> ``x * x``; ``pow(x, +-0.5)`` -> ``sqrt`` / ``rsqrt``
``broadcast_expand``        ``expand`` / ``expand_as`` whose users broadcast anyway -> dropped;
                            ``clamp_min`` -> ``clamp``
``matmul_to_bmm``           ``matmul`` of N-D operands -> ``bmm`` / ``mm`` on reshaped operands
                            (its decomposition adds a non-delegated ``expand``)
``fold_into_convolutions``  per-channel constant ``*``, ``/``, ``+``, ``-`` after a convolution, and a
                            per-channel affine before a 1x1 one -> the convolution's weights and bias
                            (each such op would be computed channels-first between two transposes)
``fold_token_affines``      a per-channel affine on the last dim (a token LayerNorm's weight and bias),
                            read only by linear layers / 1x1 convolutions through reshapes and
                            permutes -> those layers' weights and bias
``float_scalars``           integer scalars of float arithmetic (``x / 8``) -> float scalars
``token_permutes``          ``permute(x, (0, 2, 3, 1))`` of an image into tokens -> a 3-D transpose
                            between reshapes (keeps the tokens out of XNNPACK's channels-last tagging)
``constant_like``           ``ones_like`` / ``zeros_like`` / ``full_like`` of a static shape -> a constant
==========================  ==============================================================

Each pass is applied to the program as exported, then the program's output on its example
inputs is compared with the original's: a pass that changes the output beyond float rounding
raises. The largest absolute change per pass goes into the manifest. The rewritten graph is
exported again (``torch.export``), so what the partitioner sees is a plain exported program.

For int8 (PTQ) the passes also run on the float program before the quantizer annotates it
(:func:`rewrite_before_quantization`): the folds are exact in float only, so the quantized
program must be built from the folded graph.
"""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

aten = torch.ops.aten

#: Relative tolerance (to the output's largest magnitude, at least 1) for a pass's output change.
PASS_TOLERANCE = 1e-4
#: For quantized programs, the bounds on the mean and the largest change (relative, as above). A
#: rewrite exact up to float rounding moves some values across a quantize op's rounding boundary:
#: one int8 step each, which every later quantized layer spreads and adds to (Hi-IR mobile int8,
#: 13 LayerNorms rewritten: mean 0.0013, max 0.0076, about 55 dB). A wrong rewrite moves the whole
#: output; the artifact is then checked against the fake-quant program as every int8 export is.
QUANTIZED_MEAN_TOLERANCE = 5e-3
QUANTIZED_MAX_TOLERANCE = 0.1
#: Node meta key marking a convolution or linear layer a pass made out of arithmetic (a mean over
#: channels as a 1x1 convolution with constant weights): a computation, not a weighted layer.
ARITHMETIC = "edgeir_arithmetic"


def computes_arithmetic(node: fx.Node) -> bool:
    """Whether ``node`` is a layer a pass made out of arithmetic, which a quantizer must leave in float
    (int8 normalisation statistics cost accuracy; see :func:`rewrite_before_quantization`)."""
    return bool(node.meta.get(ARITHMETIC))


@dataclass
class _Context:
    """What a pass needs besides the graph: the module (to hold constants), a constant cache, and
    whether a quantizer will annotate the result (a fold must then keep what the quantizers see)."""

    gm: fx.GraphModule
    constants: dict[tuple, str]
    before_quantization: bool = False

    def constant(self, key: tuple, make: Callable[[], torch.Tensor]) -> fx.Node:
        """A ``get_attr`` node for the constant ``make()``, shared by every use of the same ``key``."""
        name = self.constants.get(key)
        if name is None:
            index = len(self.constants)
            while hasattr(self.gm, f"_xnnpack_const_{index}"):  # a graph these passes rewrote before
                index += 1
            name = f"_xnnpack_const_{index}"
            self.gm.register_buffer(name, make())
            self.constants[key] = name
        return self.gm.graph.get_attr(name)


def _shape(node: Any) -> tuple[int, ...] | None:
    meta = getattr(node, "meta", {}).get("tensor_meta") if isinstance(node, fx.Node) else None
    if meta is None or not hasattr(meta, "shape"):
        return None
    shape = tuple(meta.shape)
    return shape if all(isinstance(d, int) for d in shape) else None


def _dtype(node: fx.Node) -> torch.dtype:
    meta = node.meta.get("tensor_meta")
    return getattr(meta, "dtype", torch.float32)


def _call(graph: fx.Graph, op, *args) -> fx.Node:
    return graph.call_function(op, tuple(args))


def _dims(dims: Any, rank: int) -> list[int]:
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        return list(range(rank))
    if isinstance(dims, int):
        dims = [dims]
    return sorted({d % rank for d in dims})


def _reduce(ctx: _Context, x: fx.Node, shape: tuple[int, ...], dims: list[int], keepdim: bool,
            kind: str) -> fx.Node:
    """Nodes computing ``x.mean(dims)`` (``kind='mean'``) or ``x.sum(dims)`` in forms XNNPACK delegates.

    4-D over (2, 3): global average pooling (``mean.dim`` with keepdim). 4-D over (1,): a 1x1
    convolution with one output channel. Trailing dims: a linear layer with one output. Any
    other set: a permute that moves the reduced dims last, then the linear form.
    """
    graph = ctx.gm.graph
    rank = len(shape)
    count = math.prod(shape[d] for d in dims)
    kept_shape = tuple(1 if d in dims else s for d, s in enumerate(shape))
    out_shape = kept_shape if keepdim else tuple(s for d, s in enumerate(shape) if d not in dims)
    value = 1.0 / count if kind == "mean" else 1.0
    if rank == 4 and dims == [2, 3]:
        y = _call(graph, aten.mean.dim, x, [2, 3], True)
        if kind == "sum":
            y = _call(graph, operator.mul, y, float(count))
    elif rank == 4 and dims == [1]:
        weight = ctx.constant(("conv", shape[1], value), lambda: torch.full((1, shape[1], 1, 1), value))
        y = _call(graph, aten.conv2d.default, x, weight)
        y.meta[ARITHMETIC] = True
    else:
        trailing = dims == list(range(rank - len(dims), rank))
        if not trailing:
            order = [d for d in range(rank) if d not in dims] + dims
            x = _call(graph, aten.permute.default, x, order)
        weight = ctx.constant(("linear", count, value), lambda: torch.full((1, count), value))
        if dims != [rank - 1]:
            x = _call(graph, aten.reshape.default, x, [-1, count])
        y = _call(graph, aten.linear.default, x, weight)
        y.meta[ARITHMETIC] = True
    direct = rank == 4 and dims in ([2, 3], [1]) or dims == [rank - 1]
    if (kept_shape if direct else (-1, 1)) != tuple(out_shape):
        y = _call(graph, aten.reshape.default, y, list(out_shape))
    return y


# --------------------------------------------------------------------------------------------
# passes: each takes the context and returns how many nodes it rewrote
# --------------------------------------------------------------------------------------------


def _replace(node: fx.Node, new: fx.Node) -> None:
    _inherit_module_path(node, new)
    node.replace_all_uses_with(new)
    node.graph.erase_node(node)


def _inherit_module_path(node: fx.Node, new: fx.Node) -> None:
    """The nodes made to replace ``node`` (``new`` and its new inputs) take its module path.

    A quantizer's keep-float filter reads the path (``nn_module_stack``) of each node it would
    quantize; without it, a layer the rewrite made inside a kept module would be quantized.
    """
    if "nn_module_stack" not in node.meta:
        return
    pending = [new]
    while pending:
        n = pending.pop()
        if n.op != "call_function" or "nn_module_stack" in n.meta:
            continue
        n.meta["nn_module_stack"] = node.meta["nn_module_stack"]
        pending.extend(n.all_input_nodes)


def split_to_slices(ctx: _Context) -> int:
    """``chunk``, ``split``, ``split_with_sizes`` and ``unbind`` -> one static ``slice`` per used piece."""
    graph, count = ctx.gm.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in (aten.chunk.default, aten.split.Tensor,
                                                             aten.split_with_sizes.default, aten.unbind.int):
            continue
        shape = _shape(node.args[0])
        if shape is None or not all(u.target is operator.getitem for u in node.users):
            continue
        x = node.args[0]
        dim = (node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)) \
            if node.target is not aten.unbind.int else (node.args[1] if len(node.args) > 1 else 0)
        dim %= len(shape)
        size = shape[dim]
        if node.target is aten.chunk.default:
            step = -(-size // node.args[1])
            sizes = [min(step, size - s) for s in range(0, size, step)]
        elif node.target is aten.split.Tensor:
            step = node.args[1]
            sizes = [min(step, size - s) for s in range(0, size, step)] if isinstance(step, int) else list(step)
        elif node.target is aten.unbind.int:
            sizes = [1] * size
        else:
            sizes = list(node.args[1])
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        for user in list(node.users):
            i = user.args[1]
            with graph.inserting_before(user):
                piece = _call(graph, aten.slice.Tensor, x, dim, starts[i], starts[i] + sizes[i])
                if node.target is aten.unbind.int:
                    piece = _call(graph, aten.reshape.default, piece, [s for d, s in enumerate(shape) if d != dim])
            _replace(user, piece)
        graph.erase_node(node)
        count += 1
    return count


def strided_slices(ctx: _Context) -> int:
    """``x[:, k::s]`` (a step-``s`` slice taking one element of every group of ``s``) -> reshape, unit-step slice.

    XNNPACK's slice takes step 1 only. Splitting the sliced dim ``n`` into ``(n / s, s)`` makes the
    strided selection a unit-step slice of the inner dim (even/odd channel splits).
    """
    graph, count = ctx.gm.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target is not aten.slice.Tensor:
            continue
        args = list(node.args) + [None] * (5 - len(node.args))
        x, dim, start, end, step = args[:5]
        step = step if step is not None else node.kwargs.get("step", 1)
        shape, out = _shape(x), _shape(node)
        if shape is None or out is None or not isinstance(step, int) or step <= 1:
            continue
        dim %= len(shape)
        n = shape[dim]
        start = 0 if start is None else (start + n if start < 0 else start)
        if n % step or not 0 <= start < step or out[dim] != n // step:
            continue
        split = list(shape[:dim]) + [n // step, step] + list(shape[dim + 1:])
        with graph.inserting_before(node):
            grouped = _call(graph, aten.reshape.default, x, split)
            picked = _call(graph, aten.slice.Tensor, grouped, dim + 1, start, start + 1)
            new = _call(graph, aten.reshape.default, picked, list(out))
        _replace(node, new)
        count += 1
    return count


def repeat_interleave(ctx: _Context) -> int:
    """``repeat_interleave(x, r, dim)`` with an int ``r`` -> a broadcasting multiply by ones on a new inner dim."""
    graph, count = ctx.gm.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target is not aten.repeat_interleave.self_int:
            continue
        x, repeats = node.args[0], node.args[1]
        dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim")
        shape, out = _shape(x), _shape(node)
        if shape is None or out is None or dim is None or not isinstance(repeats, int):
            continue
        dim %= len(shape)
        # (outer, n, 1, inner) times a (1, 1, r, 1) constant of ones broadcasts to the r copies, 4-D
        # whatever the rank. (A cat of one tensor r times is not delegated: XNNPACK's partitioner
        # counts distinct inputs.)
        grouped = [math.prod(shape[:dim]), shape[dim], 1, math.prod(shape[dim + 1:])]
        with graph.inserting_before(node):
            inner = _call(graph, aten.reshape.default, x, grouped)
            ones = ctx.constant(("ones", 1, 1, repeats, 1), lambda r=repeats: torch.ones(1, 1, r, 1))
            new = _call(graph, aten.reshape.default, _call(graph, aten.mul.Tensor, inner, ones), list(out))
        _replace(node, new)
        count += 1
    return count


def repeats(ctx: _Context) -> int:
    """``repeat`` (tile) -> identity where every factor is 1, else a broadcasting multiply by ones per tiled dim."""
    graph, count = ctx.gm.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target is not aten.repeat.default:
            continue
        x, factors = node.args[0], list(node.args[1])
        shape = _shape(x)
        if shape is None or len(factors) != len(shape):
            continue
        with graph.inserting_before(node):
            new, current = x, list(shape)
            for dim, factor in enumerate(factors):
                if factor == 1:
                    continue
                # tiling dim d copies the slab [d:]: (outer, 1, slab, 1) times (1, f, 1, 1) ones
                grouped = [math.prod(current[:dim]), 1, math.prod(current[dim:]), 1]
                ones = ctx.constant(("ones", 1, factor, 1, 1), lambda f=factor: torch.ones(1, f, 1, 1))
                tiled = _call(graph, aten.mul.Tensor, _call(graph, aten.reshape.default, new, grouped), ones)
                current[dim] *= factor
                new = _call(graph, aten.reshape.default, tiled, current)
        _replace(node, new)
        count += 1
    return count


def reductions(ctx: _Context) -> int:
    """``mean``, ``sum``, ``var``, 2-norm and ``adaptive_avg_pool2d(x, 1)`` -> delegated reduction forms."""
    graph, count = ctx.gm.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        target, args, kwargs = node.target, node.args, node.kwargs
        x = args[0] if args else None
        shape = _shape(x)
        if shape is None or _dtype(x) != torch.float32:
            continue
        rank = len(shape)
        with graph.inserting_before(node):
            if target in (aten.mean.dim, aten.sum.dim_IntList):
                if kwargs.get("dtype") is not None or (len(args) > 3 and args[3] is not None):
                    continue
                dims = _dims(args[1] if len(args) > 1 else kwargs.get("dim"), rank)
                keepdim = bool(args[2] if len(args) > 2 else kwargs.get("keepdim", False))
                if rank == 4 and dims == [2, 3] and keepdim and target is aten.mean.dim:
                    continue  # already global average pooling
                new = _reduce(ctx, x, shape, dims, keepdim, "mean" if target is aten.mean.dim else "sum")
            elif target is aten.adaptive_avg_pool2d.default and rank == 4 and list(args[1]) == [1, 1]:
                new = _call(graph, aten.mean.dim, x, [2, 3], True)
            elif target in (aten.var.dim, aten.var.correction):
                dims = _dims(args[1] if len(args) > 1 else kwargs.get("dim"), rank)
                if target is aten.var.dim:
                    unbiased = args[2] if len(args) > 2 else kwargs.get("unbiased", True)
                    correction = 1 if unbiased else 0
                    keepdim = bool(args[3] if len(args) > 3 else kwargs.get("keepdim", False))
                else:
                    correction = kwargs.get("correction", 1)
                    correction = 1 if correction is None else correction
                    keepdim = bool(kwargs.get("keepdim", False))
                n = math.prod(shape[d] for d in dims)
                centred = _call(graph, aten.sub.Tensor, x, _reduce(ctx, x, shape, dims, True, "mean"))
                new = _reduce(ctx, _call(graph, aten.mul.Tensor, centred, centred), shape, dims, keepdim, "mean")
                if correction:
                    new = _call(graph, operator.mul, new, n / (n - correction))
            elif target is aten.linalg_vector_norm.default:
                order = args[1] if len(args) > 1 else kwargs.get("ord", 2)
                if order != 2 or kwargs.get("dtype") is not None:
                    continue
                dims = _dims(args[2] if len(args) > 2 else kwargs.get("dim"), rank)
                keepdim = bool(args[3] if len(args) > 3 else kwargs.get("keepdim", False))
                squares = _call(graph, aten.mul.Tensor, x, x)
                new = _call(graph, aten.sqrt.default, _reduce(ctx, squares, shape, dims, keepdim, "sum"))
            else:
                continue
        _replace(node, new)
        count += 1
    return count


def layer_norm(ctx: _Context) -> int:
    """``layer_norm`` over trailing dims -> centre, ``rsqrt`` of the variance, affine (delegated reductions)."""
    graph, count = ctx.gm.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target is not aten.layer_norm.default:
            continue
        x = node.args[0]
        shape = _shape(x)
        if shape is None:
            continue
        normalized = list(node.args[1])
        weight = node.args[2] if len(node.args) > 2 else node.kwargs.get("weight")
        bias = node.args[3] if len(node.args) > 3 else node.kwargs.get("bias")
        eps = node.args[4] if len(node.args) > 4 else node.kwargs.get("eps", 1e-5)
        dims = list(range(len(shape) - len(normalized), len(shape)))
        with graph.inserting_before(node):
            centred = _call(graph, aten.sub.Tensor, x, _reduce(ctx, x, shape, dims, True, "mean"))
            var = _reduce(ctx, _call(graph, aten.mul.Tensor, centred, centred), shape, dims, True, "mean")
            inv_std = _call(graph, aten.rsqrt.default, _call(graph, operator.add, var, float(eps)))
            y = _call(graph, aten.mul.Tensor, centred, inv_std)
            if weight is not None:
                y = _call(graph, aten.mul.Tensor, y, weight)
            if bias is not None:
                y = _call(graph, aten.add.Tensor, y, bias)
        _replace(node, y)
        count += 1
    return count


def powers(ctx: _Context) -> int:
    """``square`` and ``pow`` with exponents 2, 1, 0.5, -0.5 -> ``mul``, identity, ``sqrt``, ``rsqrt``."""
    graph, count = ctx.gm.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        x = node.args[0] if node.args else None
        if node.target is aten.square.default:
            exponent = 2
        elif node.target is aten.pow.Tensor_Scalar and isinstance(node.args[1], (int, float)):
            exponent = node.args[1]
            if exponent == 2 and isinstance(exponent, int):
                continue  # delegated as it is
        else:
            continue
        with graph.inserting_before(node):
            if exponent == 2:
                new = _call(graph, aten.mul.Tensor, x, x)
            elif exponent == 0.5:
                new = _call(graph, aten.sqrt.default, x)
            elif exponent == -0.5:
                new = _call(graph, aten.rsqrt.default, x)
            elif exponent == 1:
                new = x
            else:
                continue
        _replace(node, new)
        count += 1
    return count


_BROADCASTING = {aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor, aten.maximum.default,
                 aten.minimum.default}


def _broadcast(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    return tuple(torch.broadcast_shapes(torch.Size(a), torch.Size(b)))


def broadcast_expand(ctx: _Context) -> int:
    """Drop ``expand``/``expand_as`` whose users broadcast to the same shape anyway; ``clamp_min`` -> ``clamp``."""
    graph, count = ctx.gm.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in (aten.expand.default, aten.expand_as.default):
            continue
        source, expanded = node.args[0], _shape(node)
        source_shape = _shape(source)
        if source_shape is None or expanded is None:
            continue
        droppable = source_shape == expanded
        if not droppable and node.users:
            droppable = True
            for user in node.users:
                if user.target not in _BROADCASTING or len(user.args) != 2 or user.kwargs:
                    droppable = False
                    break
                other = user.args[1] if user.args[0] is node else user.args[0]
                other_shape = _shape(other) if isinstance(other, fx.Node) else ()
                if other_shape is None or _broadcast(source_shape, other_shape) != _shape(user):
                    droppable = False
                    break
        if droppable:
            _replace(node, source)
            count += 1
    for node in list(graph.nodes):  # after the expands: their sources' shapes are known until here
        if node.op == "call_function" and node.target is aten.clamp_min.default:
            with graph.inserting_before(node):
                new = graph.call_function(aten.clamp.default, (node.args[0], node.args[1]))
            _replace(node, new)
            count += 1
    return count


def matmul_to_bmm(ctx: _Context) -> int:
    """``matmul`` of N-D operands with equal batch dims -> ``bmm`` (3-D) / ``mm`` (2-D right operand)."""
    graph, count = ctx.gm.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target is not aten.matmul.default:
            continue
        a, b = node.args[:2]
        sa, sb, so = _shape(a), _shape(b), _shape(node)
        if sa is None or sb is None or so is None or len(sa) < 2:
            continue
        with graph.inserting_before(node):
            if len(sb) == 2:
                flat = _call(graph, aten.reshape.default, a, [-1, sa[-1]])
                new = _call(graph, aten.reshape.default, _call(graph, aten.mm.default, flat, b), list(so))
            elif len(sa) == len(sb) >= 3 and sa[:-2] == sb[:-2]:
                batch = math.prod(sa[:-2])
                if len(sa) == 3:
                    new = _call(graph, aten.bmm.default, a, b)
                else:
                    a3 = _call(graph, aten.reshape.default, a, [batch, sa[-2], sa[-1]])
                    b3 = _call(graph, aten.reshape.default, b, [batch, sb[-2], sb[-1]])
                    new = _call(graph, aten.reshape.default, _call(graph, aten.bmm.default, a3, b3), list(so))
            else:
                continue
        _replace(node, new)
        count += 1
    return count


def token_permutes(ctx: _Context) -> int:
    """``permute(x, (0, 2, 3, 1))`` of a 4-D tensor (an image to ``(B, H, W, C)`` tokens) -> a 3-D transpose
    between reshapes.

    XNNPACK's layout pass propagates a convolution's channels-last tag through a permute: the
    ``(B, H, W, C)`` result is then stored as that layout's transpose, and every op on the tokens
    that needs plain order (a linear layer, a reshape into windows) copies it back, and again
    after it. A reshape needs plain order itself, so the image is copied back once and the tokens
    stay plain: FlexIR ``mobile`` 160 -> 14 layout copies at 64x64 (0.97x its time at 128x128),
    Hi-IR 0.95x. Exact (the same elements moved).
    """
    graph, count = ctx.gm.graph, 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target is not aten.permute.default or list(node.args[1]) != [0, 2, 3, 1]:
            continue
        x = node.args[0]
        shape = _shape(x)
        if shape is None or len(shape) != 4:
            continue
        batch, channels, height, width = shape
        with graph.inserting_before(node):
            flat = _call(graph, aten.reshape.default, x, [batch, channels, height * width])
            tokens = _call(graph, aten.permute.default, flat, [0, 2, 1])
            new = _call(graph, aten.reshape.default, tokens, [batch, height, width, channels])
        _replace(node, new)
        count += 1
    return count


def constant_like(ctx: _Context) -> int:
    """``ones_like`` / ``zeros_like`` / ``full_like`` of a static float shape -> a constant buffer."""
    graph, count = ctx.gm.graph, 0
    fills = {aten.ones_like.default: lambda n: 1.0, aten.zeros_like.default: lambda n: 0.0,
             aten.full_like.default: lambda n: n.args[1]}
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in fills:
            continue
        shape = _shape(node)
        if shape is None or _dtype(node) != torch.float32:
            continue
        value = float(fills[node.target](node))
        with graph.inserting_before(node):
            new = ctx.constant(("fill", shape, value), lambda s=shape, v=value: torch.full(s, v))
        _replace(node, new)
        count += 1
    return count


def _is_quantized(graph: fx.Graph) -> bool:
    """Whether the graph holds quantize/dequantize ops (a PT2E-converted int8 program)."""
    return any(node.op == "call_function" and "quantize_per" in str(node.target) for node in graph.nodes)


def _constant(ctx: _Context, value: Any) -> torch.Tensor | None:
    """The value of a constant operand: a number, a module attribute, or a reshape/view of one."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.tensor(float(value))
    if not isinstance(value, fx.Node):
        return None
    if value.op == "get_attr":
        tensor = _attribute(ctx.gm, value.target)
        return tensor.detach() if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() else None
    if value.op == "call_function" and value.target in (aten.reshape.default, aten.view.default):
        source = _constant(ctx, value.args[0])
        return None if source is None else source.reshape(value.args[1])
    return None


def _per_channel(value: torch.Tensor, channels: int) -> torch.Tensor | None:
    """``value`` as ``channels`` numbers when it broadcasts against ``(N, channels, H, W)`` along channels only."""
    if value.dim() > 4 or value.numel() not in (1, channels):
        return None
    shape = (1,) * (4 - value.dim()) + tuple(value.shape)
    if value.numel() == channels and channels > 1 and shape != (1, channels, 1, 1):
        return None
    return value.reshape(-1).expand(channels).to(torch.float32)


_CONVOLUTION = (aten.conv2d.default,)
_AFFINE = {aten.mul.Tensor: "mul", operator.mul: "mul", aten.add.Tensor: "add", operator.add: "add",
           aten.sub.Tensor: "sub", operator.sub: "sub", aten.div.Tensor: "div", operator.truediv: "div"}


def _conv_parts(ctx: _Context, conv: fx.Node) -> tuple[torch.Tensor, torch.Tensor] | None:
    args = list(conv.args) + [None] * (7 - len(conv.args))
    weight = _constant(ctx, args[1])
    if weight is None or weight.dim() != 4:
        return None
    bias = _constant(ctx, args[2]) if args[2] is not None else torch.zeros(weight.shape[0])
    return (weight, bias) if bias is not None else None


def _new_conv(ctx: _Context, conv: fx.Node, x: fx.Node, weight: torch.Tensor, bias: torch.Tensor) -> fx.Node:
    key = ("folded", len(ctx.constants))
    w = ctx.constant((*key, "weight"), lambda: weight.contiguous())
    b = ctx.constant((*key, "bias"), lambda: bias.contiguous())
    args = list(conv.args) + [None] * (7 - len(conv.args))
    stride, padding, dilation, groups = (args[3] or [1, 1]), (args[4] or [0, 0]), (args[5] or [1, 1]), (args[6] or 1)
    new = _call(ctx.gm.graph, aten.conv2d.default, x, w, b, stride, padding, dilation, groups)
    if conv.meta.get(ARITHMETIC):
        new.meta[ARITHMETIC] = True
    return new


def _peel_constant(ctx: _Context, x: Any, kind: str, channels: int) -> tuple[Any, torch.Tensor | None]:
    """For ``x = y (kind) k`` with a per-channel constant ``k`` and no other user of ``x``: ``(y, k)``;
    else ``(x, None)``."""
    if not isinstance(x, fx.Node) or _AFFINE.get(x.target) != kind or len(x.users) != 1 or x.kwargs:
        return x, None
    for i in (0, 1):
        value = _constant(ctx, x.args[1 - i])
        k = _per_channel(value, channels) if isinstance(x.args[i], fx.Node) and value is not None else None
        if k is not None:
            return x.args[i], k
    return x, None


def fold_into_convolutions(ctx: _Context) -> int:
    """Per-channel constant arithmetic next to a convolution -> the convolution's weights and bias.

    After a convolution whose output has no other user: ``conv(x) * k``, ``/ k``, ``+ k``, ``- k``
    with ``k`` a number or a per-output-channel constant (NAFNet's ``beta``/``gamma`` residual
    scales, the ``eps`` added to a variance computed by a 1x1 convolution). Before a 1x1
    convolution without padding, when nothing else reads the affine's output: ``conv(x * a + b)``
    with per-input-channel ``a``, ``b`` (a LayerNorm's affine). The arithmetic is exact up to float
    rounding; what it saves is not the arithmetic but the layout: XNNPACK computes convolutions
    channels-last, and an element-wise op with a constant 4-D or 0-D operand is computed
    channels-first, so each such op costs two full-tensor transposes inside the delegate.

    Quantized programs are left alone: there a float-rounding change upstream of a quantize op
    can move a value across a rounding boundary, one int8 step (0.05 on AnyIR mobile), which the
    pass check rightly refuses. On a float program a quantizer will annotate next, a constant
    ``+ k`` / ``- k`` is folded only into convolutions that stay float (arithmetic): folded into a
    quantized layer it would be added before the output quantizer instead of after it, and an
    ``eps`` added to a variance then rounds away (AnyIR ``tiny`` int8: fake-quant vs float 43.1 ->
    32.7 dB, the artifact 29 dB from its fake-quant model, with ``rsqrt`` of a zero variance).
    """
    graph, count = ctx.gm.graph, 0
    if _is_quantized(graph):
        return 0
    changed = True
    while changed:
        changed = False
        for node in list(graph.nodes):
            kind = _AFFINE.get(node.target) if node.op == "call_function" else None
            if kind is None or len(node.args) != 2 or node.kwargs:
                continue
            a, b = node.args
            conv, other = (a, b) if isinstance(a, fx.Node) and a.target in _CONVOLUTION else (b, a)
            if not (isinstance(conv, fx.Node) and conv.target in _CONVOLUTION and len(conv.users) == 1) or \
                    (kind in ("sub", "div") and conv is not a):
                continue
            parts, value = _conv_parts(ctx, conv), _constant(ctx, other)
            if parts is None or value is None or \
                    (ctx.before_quantization and kind in ("add", "sub") and not conv.meta.get(ARITHMETIC)):
                continue
            weight, bias = parts
            k = _per_channel(value, weight.shape[0])
            if k is None:
                continue
            if kind in ("mul", "div"):
                k = k if kind == "mul" else 1.0 / k
                weight, bias = weight * k.view(-1, 1, 1, 1), bias * k
            else:
                bias = bias + (k if kind == "add" else -k)
            with graph.inserting_before(node):
                new = _new_conv(ctx, conv, conv.args[0], weight, bias)
            _replace(node, new)
            graph.erase_node(conv)
            count += 1
            changed = True
        for conv in list(graph.nodes):
            if conv.op != "call_function" or conv.target not in _CONVOLUTION:
                continue
            parts = _conv_parts(ctx, conv)
            args = list(conv.args) + [None] * (7 - len(conv.args))
            if parts is None or parts[0].shape[2:] != (1, 1) or (args[6] or 1) != 1 or any(args[4] or [0]):
                continue
            weight, bias = parts
            x, shift = _peel_constant(ctx, conv.args[0], "add", weight.shape[1])
            x, scale = _peel_constant(ctx, x, "mul", weight.shape[1])
            if shift is None and scale is None:
                continue
            if shift is not None:
                bias = bias + (weight.sum(dim=(2, 3)) * shift).sum(dim=1)
            if scale is not None:
                weight = weight * scale.view(1, -1, 1, 1)
            with graph.inserting_before(conv):
                new = _new_conv(ctx, conv, x, weight, bias)
            _replace(conv, new)
            count += 1
            changed = True
    if count:
        _drop_unused_attributes(ctx.gm)
    return count


_LAYOUT_ONLY = (aten.reshape.default, aten.view.default, aten.permute.default, aten.contiguous.default,
                aten.clone.default)


def _linear_parts(ctx: _Context, linear: fx.Node) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A linear layer's constant weight and bias (zeros without one), or None if either is not constant."""
    weight = _constant(ctx, linear.args[1])
    if weight is None or weight.dim() != 2:
        return None
    has_bias = len(linear.args) > 2 and linear.args[2] is not None
    bias = _constant(ctx, linear.args[2]) if has_bias else torch.zeros(weight.shape[0])
    return (weight, bias) if bias is not None else None


def _channel_readers(ctx: _Context, node: fx.Node, dim: int) -> list[fx.Node] | None:
    """The linear layers and unpadded 1x1 convolutions that read ``node`` with its dim ``dim`` as their
    input channels, through reshapes and permutes that keep that dim whole; None if anything else
    reads it (or reads it as something other than the input)."""
    shape = _shape(node)
    if shape is None:
        return None
    rank, readers = len(shape), []
    for user in node.users:
        if user.op != "call_function" or user.args[0] is not node or node in user.args[1:] or user.kwargs:
            return None
        if user.target is aten.linear.default:
            if dim != rank - 1 or _linear_parts(ctx, user) is None:
                return None
            readers.append(user)
            continue
        if user.target in _CONVOLUTION:
            parts, args = _conv_parts(ctx, user), list(user.args) + [None] * (7 - len(user.args))
            if dim != 1 or rank != 4 or parts is None or parts[0].shape[2:] != (1, 1) or (args[6] or 1) != 1 \
                    or any(args[4] or [0]):
                return None
            readers.append(user)
            continue
        if user.target not in _LAYOUT_ONLY:
            return None
        if user.target is aten.permute.default:
            below = [d % rank for d in user.args[1]].index(dim)
        elif user.target in (aten.reshape.default, aten.view.default):
            out = _shape(user)
            if out is None or dim != rank - 1 or out[-1] != shape[-1]:
                return None
            below = len(out) - 1
        else:
            below = dim
        found = _channel_readers(ctx, user, below)
        if found is None:
            return None
        readers += found
    return readers


def fold_token_affines(ctx: _Context) -> int:
    """A per-channel affine on the last dim -> the linear layers / 1x1 convolutions that read it.

    ``(x * a + b)`` with ``a``, ``b`` constant along the last dim (a LayerNorm's weight and bias
    on tokens), when everything that reads it, through reshapes and permutes that keep that dim
    whole (window partitions, tokens back to NCHW), is a linear layer or an unpadded 1x1
    convolution taking it as input channels (Hi-IR: each layer's first LayerNorm feeds the q/k/v
    layers of its windows, the second its bottleneck's first convolution). The affine becomes
    those layers' weights (``W * a``) and bias (``+ W b``): exact up to float rounding. XNNPACK
    computes an element-wise op with a parameter operand channels-first, so each affine on a
    channels-last tensor cost two transposes of it (Hi-IR mobile: 13 of its 41 layout copies).
    Quantized programs are left alone, as for :func:`fold_into_convolutions`.
    """
    graph, count = ctx.gm.graph, 0
    if _is_quantized(graph):
        return 0
    for node in list(graph.nodes):
        if node.op != "call_function" or _AFFINE.get(node.target) not in ("add", "mul") or node.kwargs:
            continue
        shape = _shape(node)
        if shape is None or len(shape) < 2:
            continue  # (a mul read by the add of an affine is skipped: its reader is not a layer)
        channels = shape[-1]
        x, shift = node, None
        if _AFFINE.get(node.target) == "add":
            x, shift = _peel_last(ctx, node, "add", channels)
        scale = None
        if isinstance(x, fx.Node) and _AFFINE.get(x.target) == "mul" and (x is node or len(x.users) == 1):
            x, scale = _peel_last(ctx, x, "mul", channels)
        if (shift is None and scale is None) or not isinstance(x, fx.Node) or _shape(x) != shape:
            continue
        readers = _channel_readers(ctx, node, len(shape) - 1)
        if not readers or len(set(readers)) != len(readers):
            continue
        a = scale if scale is not None else torch.ones(channels)
        b = shift if shift is not None else torch.zeros(channels)
        for reader in readers:
            with graph.inserting_before(reader):
                if reader.target is aten.linear.default:
                    weight, bias = _linear_parts(ctx, reader)
                    key = ("folded", len(ctx.constants))
                    w = ctx.constant((*key, "weight"), lambda v=weight * a: v.contiguous())
                    c = ctx.constant((*key, "bias"), lambda v=bias + weight @ b: v.contiguous())
                    new = _call(graph, aten.linear.default, reader.args[0], w, c)
                else:
                    weight, bias = _conv_parts(ctx, reader)
                    new = _new_conv(ctx, reader, reader.args[0], weight * a.view(1, -1, 1, 1),
                                    bias + weight.sum(dim=(2, 3)) @ b)
            _replace(reader, new)
        _replace(node, x)
        count += 1
    if count:
        _drop_unused_attributes(ctx.gm)
    return count


def _peel_last(ctx: _Context, node: fx.Node, kind: str, channels: int) -> tuple[Any, torch.Tensor | None]:
    """For ``node = y (kind) k`` with ``k`` constant along the last dim only: ``(y, k)``; else ``(node, None)``."""
    if len(node.args) != 2:
        return node, None
    for i in (0, 1):
        y, value = node.args[i], _constant(ctx, node.args[1 - i])
        if not isinstance(y, fx.Node) or value is None or value.numel() not in (1, channels):
            continue
        if value.numel() == channels and channels > 1 and (value.dim() == 0 or value.shape[-1] != channels):
            continue
        return y, value.reshape(-1).expand(channels).to(torch.float32)
    return node, None


def _attribute(gm: fx.GraphModule, target: Any) -> Any:
    value: Any = gm
    for part in str(target).split("."):
        value = getattr(value, part, None)
    return value


def _drop_unused_attributes(gm: fx.GraphModule) -> None:
    """Remove the weights a fold replaced, so that the re-exported program does not carry them."""
    gm.graph.eliminate_dead_code()
    if any(node.op == "call_module" or (node.op == "get_attr" and isinstance(_attribute(gm, node.target), nn.Module))
           for node in gm.graph.nodes):
        return  # subgraphs (control flow) read weights through their own graphs
    used = {str(node.target) for node in gm.graph.nodes if node.op == "get_attr"}
    for name, _ in list(gm.named_parameters()) + list(gm.named_buffers()):
        if name not in used:
            owner, _, leaf = name.rpartition(".")
            module = gm.get_submodule(owner) if owner else gm
            delattr(module, leaf)


def float_scalars(ctx: _Context) -> int:
    """Integer scalars of float arithmetic (``x / 8``) -> float scalars.

    An integer scalar becomes an int64 constant whose conversion to float stays outside the
    delegate; the float scalar gives the same value (exact for integers below 2**24).
    """
    graph, count = ctx.gm.graph, 0
    for node in graph.nodes:
        if node.op != "call_function" or node.target not in _BROADCASTING or len(node.args) != 2:
            continue
        a, b = node.args
        if isinstance(a, fx.Node) and _dtype(a) == torch.float32 and isinstance(b, int) and not isinstance(b, bool) \
                and abs(b) < 2**24:
            node.args = (a, float(b))
            count += 1
    return count


#: The passes in the order they run: ``(name, function)``.
PASSES: tuple[tuple[str, Callable[[_Context], int]], ...] = (
    ("constant_like", constant_like),
    ("split_to_slices", split_to_slices),
    ("strided_slices", strided_slices),
    ("repeat_interleave", repeat_interleave),
    ("repeats", repeats),
    ("layer_norm", layer_norm),
    ("reductions", reductions),
    ("powers", powers),
    ("fold_into_convolutions", fold_into_convolutions),
    ("fold_token_affines", fold_token_affines),
    ("matmul_to_bmm", matmul_to_bmm),
    ("broadcast_expand", broadcast_expand),
    ("float_scalars", float_scalars),
    ("token_permutes", token_permutes),
)


def _outputs(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _outputs(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _outputs(v)]
    return []


def _run_passes(gm: fx.GraphModule, inputs: tuple[torch.Tensor, ...], before_quantization: bool = False,
                ) -> tuple[list[dict[str, Any]], bool]:
    """Run :data:`PASSES` over ``gm`` in place, checking each output-equal; the records and whether any rewrote."""
    from torch.fx.passes.shape_prop import ShapeProp

    with torch.no_grad():
        reference = [t.detach().clone() for t in _outputs(ShapeProp(gm).propagate(*inputs))]
    scale = max([1.0] + [float(t.abs().max()) for t in reference if t.numel()])
    ctx = _Context(gm, {}, before_quantization)
    quantized = _is_quantized(gm.graph)
    records, changed = [], False
    for name, fn in PASSES:
        start = time.perf_counter()
        rewrites = fn(ctx)
        error = mean_error = 0.0
        if rewrites:
            changed = True
            gm.graph.eliminate_dead_code()
            gm.graph.lint()
            gm.recompile()
            # One forward both checks this pass and gives the next one the shapes it reads.
            with torch.no_grad():
                after = _outputs(ShapeProp(gm).propagate(*inputs))
            pairs = [(a, b) for a, b in zip(reference, after, strict=True) if a.numel()]
            error = max((float((a - b).abs().max()) for a, b in pairs), default=0.0)
            mean_error = max((float((a - b).abs().float().mean()) for a, b in pairs), default=0.0)
            if quantized:
                ok = mean_error <= QUANTIZED_MEAN_TOLERANCE * scale and error <= QUANTIZED_MAX_TOLERANCE * scale
                bound = (f"mean {mean_error:.3g} <= {QUANTIZED_MEAN_TOLERANCE * scale:.3g}, "
                         f"max <= {QUANTIZED_MAX_TOLERANCE * scale:.3g}")
            else:
                ok, bound = error <= PASS_TOLERANCE * scale, f"tolerance {PASS_TOLERANCE * scale:.3g}"
            if not ok:
                raise ValueError(f"delegate pass '{name}' changed the program's output by {error:.3g} ({bound})")
        record = {"pass": name, "rewrites": rewrites, "max_abs_error": error,
                  "seconds": round(time.perf_counter() - start, 3)}
        if quantized:
            record["mean_abs_error"] = mean_error
        records.append(record)
    return records, changed


def apply_delegate_passes(exported: torch.export.ExportedProgram, example_inputs: Sequence[torch.Tensor],
                          ) -> tuple[torch.export.ExportedProgram, list[dict[str, Any]]]:
    """Run :data:`PASSES` over ``exported``, check each output-equal, and export the result again.

    Args:
        exported: A program as ``torch.export.export`` gives it (static shapes).
        example_inputs: Inputs the output-equality check runs on (the program's example inputs).

    Returns:
        The rewritten program (``exported`` itself if no pass rewrote anything) and one record per
        pass: ``{"pass", "rewrites", "max_abs_error", "seconds"}``.

    Raises:
        ValueError: if a pass changed the program's output beyond :data:`PASS_TOLERANCE` (for a
            quantized program: beyond :data:`QUANTIZED_MEAN_TOLERANCE` on average or
            :data:`QUANTIZED_MAX_TOLERANCE` anywhere).
    """
    gm = exported.module()
    inputs = tuple(example_inputs)
    records, changed = _run_passes(gm, inputs)
    if not changed:
        return exported, records
    return torch.export.export(gm, inputs, strict=False), records


def rewrite_before_quantization(exported: torch.export.ExportedProgram, example_inputs: Sequence[torch.Tensor],
                                ) -> tuple[fx.GraphModule, list[dict[str, Any]]]:
    """The float program with :data:`PASSES` applied, as the graph a PT2E quantizer annotates.

    The folding passes are exact in float but not around quantize ops (a 1-ulp change crosses a
    rounding boundary), so on a quantized program they do not run, and XNNPACK computes each of
    those per-channel ops channels-first between two transposes: NAFNet ``mobile`` int8 kept 155
    layout copies where fp32 has 11. Run before quantization, the quantizer annotates the folded
    graph, the fake-quant program the artifact is checked against is built from it, and nothing is
    left to fold afterwards. The graph is not exported again (that would drop the module paths a
    keep-float filter reads); the nodes a pass adds take the path of the node they replace, and
    the layers made out of arithmetic are marked (:func:`computes_arithmetic`). One fold is held
    back: a constant ``+``/``-`` goes only into layers that stay float (:func:`fold_into_convolutions`).

    Returns:
        The rewritten graph module (with fake-tensor ``val`` meta on every node, as
        ``torch.export`` leaves it) and one record per pass, as :func:`apply_delegate_passes`.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.passes.fake_tensor_prop import FakeTensorProp

    gm = exported.module()
    inputs = tuple(example_inputs)
    records, changed = _run_passes(gm, inputs, before_quantization=True)
    if changed:
        FakeTensorProp(gm, FakeTensorMode(allow_non_fake_inputs=True)).propagate(*inputs)
    return gm, records
