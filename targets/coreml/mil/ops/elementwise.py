"""Element-wise MIL ops: binary arithmetic and comparisons, unary math, activations, ``cast``, ``softmax``.

Definitions followed: ``mil/ops/defs/iOS15/elementwise_binary.py`` (numpy broadcasting of ``x`` and
``y``), ``iOS15/elementwise_unary.py`` (``epsilon`` of ``rsqrt``/``log``/``inverse`` added to ``x``
before the function), ``iOS15/activation.py``; iOS 17 redefines none of their semantics (only
input dtypes).
"""

from __future__ import annotations

import math

import torch

from edgeir.targets.coreml.mil.ops import kernel

_BINARY = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "maximum": torch.maximum, "minimum": torch.minimum,
    "pow": torch.pow, "equal": torch.eq, "not_equal": torch.ne, "greater": torch.gt, "greater_equal": torch.ge,
    "less": torch.lt, "less_equal": torch.le, "logical_and": torch.logical_and, "logical_or": torch.logical_or,
    "logical_xor": torch.logical_xor,
}


def _binary(name: str):
    fn = _BINARY[name]

    def run(a):
        return fn(a.tensor("x"), a.tensor("y"))

    run.__name__ = name
    run.__doc__ = f"``{name}(x, y)`` with numpy broadcasting (iOS15/elementwise_binary.py, class ``{name}``)."
    return run


for _name in _BINARY:
    kernel(_name)(_binary(_name))


@kernel("real_div")
def real_div(a):
    """``x / y``, true division even for integer inputs (iOS15/elementwise_binary.py, ``real_div``)."""
    x, y = a.tensor("x"), a.tensor("y")
    if not x.is_floating_point():
        x = x.float()
    return x / y


@kernel("floor_div")
def floor_div(a):
    """``floor(x / y)`` (iOS15/elementwise_binary.py, ``floor_div``)."""
    return torch.div(a.tensor("x"), a.tensor("y"), rounding_mode="floor")


@kernel("mod")
def mod(a):
    """``x - floor(x / y) * y``: the result takes the sign of ``y`` (iOS15/elementwise_binary.py, ``mod``)."""
    return torch.remainder(a.tensor("x"), a.tensor("y"))


_UNARY = {
    "abs": torch.abs, "acos": torch.acos, "asin": torch.asin, "atan": torch.atan, "atanh": torch.atanh,
    "ceil": torch.ceil, "cos": torch.cos, "cosh": torch.cosh, "erf": torch.erf, "exp": torch.exp,
    "exp2": torch.exp2, "floor": torch.floor, "logical_not": torch.logical_not, "sign": torch.sign,
    "sin": torch.sin, "sinh": torch.sinh, "sqrt": torch.sqrt, "square": torch.square, "tan": torch.tan,
    "tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "silu": torch.nn.functional.silu,
    "softsign": torch.nn.functional.softsign,
    "relu6": lambda x: torch.clamp(x, 0.0, 6.0),
    # iOS15/activation.py softplus: log(1 + exp(x)), no threshold (torch's default threshold 20 is exact in fp32).
    "softplus": lambda x: torch.nn.functional.softplus(x, beta=1.0, threshold=20.0),
    # iOS15/elementwise_unary.py round: to nearest, half to even (its value_inference is np.round).
    "round": torch.round,
}


def _unary(name: str):
    fn = _UNARY[name]

    def run(a):
        return fn(a.tensor("x"))

    run.__name__ = name
    run.__doc__ = f"``{name}(x)`` element-wise (iOS15/elementwise_unary.py or activation.py, class ``{name}``)."
    return run


for _name in _UNARY:
    kernel(_name)(_unary(_name))


@kernel("rsqrt")
def rsqrt(a):
    """``1 / sqrt(x + epsilon)``, ``epsilon`` default 1e-12 (iOS15/elementwise_unary.py, ``rsqrt``)."""
    return torch.rsqrt(a.tensor("x") + a.value("epsilon", 1e-12))


@kernel("log")
def log(a):
    """``log(x + epsilon)``, ``epsilon`` default 1e-45 (iOS15/elementwise_unary.py, ``log``)."""
    return torch.log(a.tensor("x") + a.value("epsilon", 1e-45))


@kernel("inverse")
def inverse(a):
    """``1 / (x + epsilon)``, ``epsilon`` default 1e-4 (iOS15/elementwise_unary.py, ``inverse``)."""
    return 1.0 / (a.tensor("x") + a.value("epsilon", 1e-4))


@kernel("clip")
def clip(a):
    """``min(max(x, alpha), beta)`` (iOS15/elementwise_unary.py, ``clip``)."""
    return torch.minimum(torch.maximum(a.tensor("x"), a.tensor("alpha")), a.tensor("beta"))


@kernel("threshold")
def threshold(a):
    """``max(x, alpha)`` (iOS15/elementwise_unary.py, ``threshold``)."""
    return torch.maximum(a.tensor("x"), a.tensor("alpha"))


@kernel("cast")
def cast(a):
    """``x`` as ``dtype``; the interpreter stores the result in the declared dtype (float to int truncates,
    as the definition's ``astype``) (iOS15/elementwise_unary.py, ``cast``)."""
    x = a.tensor("x")
    target = a.output_dtype()
    if target is not None and not target.is_floating_point and target != torch.bool and x.is_floating_point():
        return torch.trunc(x)
    return x


@kernel("gelu")
def gelu(a):
    """``EXACT`` 0.5x(1+erf(x/sqrt 2)), ``TANH_APPROXIMATION``, ``SIGMOID_APPROXIMATION`` x*sigmoid(1.702x)
    (iOS15/activation.py, ``gelu``; mode default ``EXACT``)."""
    x, mode = a.tensor("x"), a.value("mode", "EXACT")
    if mode == "EXACT":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))
    if mode == "SIGMOID_APPROXIMATION":
        return x * torch.sigmoid(1.702 * x)
    raise ValueError(f"gelu mode {mode!r} is not one of EXACT, TANH_APPROXIMATION, SIGMOID_APPROXIMATION")


@kernel("leaky_relu")
def leaky_relu(a):
    """``x`` if ``x >= 0`` else ``alpha * x`` (iOS15/activation.py, ``leaky_relu``)."""
    x = a.tensor("x")
    return torch.where(x >= 0, x, a.tensor("alpha") * x)


@kernel("elu")
def elu(a):
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)`` (iOS15/activation.py, ``elu``)."""
    x = a.tensor("x")
    return torch.where(x > 0, x, a.tensor("alpha") * torch.expm1(x))


@kernel("prelu")
def prelu(a):
    """``x`` if ``x >= 0`` else ``alpha[c] * x``, ``alpha`` per channel (axis 1) (iOS15/activation.py, ``prelu``)."""
    x, alpha = a.tensor("x"), a.tensor("alpha")
    alpha = alpha.reshape([1, -1] + [1] * (x.dim() - 2))
    return torch.where(x >= 0, x, alpha * x)


@kernel("clamped_relu")
def clamped_relu(a):
    """``min(max(x, 0), beta)`` for ``x >= 0``, ``min(alpha * x, beta)`` else (iOS15/activation.py,
    ``clamped_relu``)."""
    x, alpha, beta = a.tensor("x"), a.tensor("alpha"), a.tensor("beta")
    return torch.minimum(torch.where(x >= 0, x, alpha * x), beta)


@kernel("sigmoid_hard")
def sigmoid_hard(a):
    """``min(max(alpha * x + beta, 0), 1)`` (iOS15/activation.py, ``sigmoid_hard``)."""
    return torch.clamp(a.tensor("alpha") * a.tensor("x") + a.tensor("beta"), 0.0, 1.0)


@kernel("scaled_tanh")
def scaled_tanh(a):
    """``alpha * tanh(beta * x)`` (iOS15/activation.py, ``scaled_tanh``)."""
    return a.tensor("alpha") * torch.tanh(a.tensor("beta") * a.tensor("x"))


@kernel("linear_activation")
def linear_activation(a):
    """``alpha * x + beta`` (iOS15/activation.py, ``linear_activation``)."""
    return a.tensor("alpha") * a.tensor("x") + a.tensor("beta")


@kernel("softmax")
def softmax(a):
    """``exp(x - max) / sum(exp(x - max))`` along ``axis`` (default -1) (iOS15/activation.py, ``softmax``)."""
    return torch.softmax(a.tensor("x"), dim=int(a.value("axis", -1)))


@kernel("select")
def select(a):
    """``a`` where ``cond`` else ``b``, broadcast (iOS15/control_flow.py, ``select``)."""
    return torch.where(a.tensor("cond").bool(), a.tensor("a"), a.tensor("b"))
