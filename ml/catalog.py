"""The vocabulary's functions: activations, combinations, objectives, optimizers, initializers.

No framework is imported here; the backends and the ONNX exporter join these names to their
builders, and `GET /catalog` renders this metadata. Each activation carries a numpy reference
implementation: the catalog draws its curve from it, and a test holds both backends to it.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class FunctionInfo:
    name: str
    formula: str
    range: str = ""
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class ActivationInfo(FunctionInfo):
    # The formula in numpy, on net inputs whose last axis holds a layer's units (softmax's).
    reference: Callable[[Array], Array]


LEAKY_RELU_SLOPE = 0.01
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _logistic(g: Array) -> Array:
    return np.asarray(1 / (1 + np.exp(-g)))


def _softmax(g: Array) -> Array:
    e = np.exp(g - g.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def _elu(g: Array) -> Array:
    return np.where(g > 0, g, np.expm1(np.minimum(g, 0)))


ACTIVATIONS: dict[str, ActivationInfo] = {
    a.name: a
    for a in (
        ActivationInfo("identity", "g", "(-inf, inf)", "the net input unchanged",
                       reference=lambda g: g),
        ActivationInfo("exponential", "exp(g)", "(0, inf)",
                       "with a radial combination: an RBF unit", reference=np.exp),
        ActivationInfo("reciprocal", "1 / g", "(-inf, 0) ∪ (0, inf)",
                       reference=np.reciprocal),
        ActivationInfo("square", "g²", "[0, inf)", reference=np.square),
        ActivationInfo("logistic", "1 / (1 + exp(-g))", "(0, 1)", reference=_logistic),
        ActivationInfo("softmax", "exp(g_j) / Σ_k exp(g_k)", "(0, 1), sums to 1",
                       "over a layer's units; its curve is one of two units whose other net "
                       "input is 0: the logistic", reference=_softmax),
        ActivationInfo("gauss", "exp(-g²)", "(0, 1]", reference=lambda g: np.exp(-np.square(g))),
        ActivationInfo("sine", "sin(g)", "[-1, 1]", reference=np.sin),
        ActivationInfo("cosine", "cos(g)", "[-1, 1]", reference=np.cos),
        ActivationInfo("elliott", "g / (1 + |g|)", "(-1, 1)",
                       reference=lambda g: g / (1 + np.abs(g))),
        ActivationInfo("tanh", "tanh(g)", "(-1, 1)", reference=np.tanh),
        ActivationInfo("arctan", "(2/π) arctan(g)", "(-1, 1)",
                       reference=lambda g: 2 / np.pi * np.arctan(g)),
        ActivationInfo("relu", "max(0, g)", "[0, inf)", reference=lambda g: np.maximum(g, 0)),
        ActivationInfo("leaky_relu", "g if g > 0 else 0.01 g", "(-inf, inf)",
                       reference=lambda g: np.where(g > 0, g, LEAKY_RELU_SLOPE * g)),
        ActivationInfo("elu", "g if g > 0 else exp(g) - 1", "(-1, inf)", reference=_elu),
        ActivationInfo("selu", "1.0507 (g if g > 0 else 1.6733 (exp(g) - 1))", "(-1.7581, inf)",
                       reference=lambda g: SELU_SCALE * np.where(g > 0, g, SELU_ALPHA * _elu(g))),
        ActivationInfo("gelu", "g Φ(g) = g (1 + erf(g/√2)) / 2", "(-0.17, inf)",
                       reference=lambda g: g * (1 + _erf(g / np.sqrt(2))) / 2),
        ActivationInfo("softplus", "log(1 + exp(g))", "(0, inf)",
                       reference=lambda g: np.logaddexp(0, g)),
        ActivationInfo("silu", "g / (1 + exp(-g))", "(-0.28, inf)",
                       reference=lambda g: g * _logistic(g)),
    )
}
ACTIVATION_ALIASES = {"linear": "identity", "sigmoid": "logistic"}

# Output activations whose cross-entropy both backends compute from logits, for stability.
LOGIT_ACTIVATIONS = {"softmax": "categorical_crossentropy", "logistic": "binary_crossentropy"}

# f is the fan-in, w_ij the weights (centres for radial ones), a_j altitudes, b_j widths.
COMBINATIONS: dict[str, FunctionInfo] = {
    c.name: c
    for c in (
        FunctionInfo("additive", "Σᵢ xᵢ", description="no weights"),
        FunctionInfo("linear", "bⱼ + Σᵢ wᵢⱼ xᵢ", description="weights and a bias per unit"),
        FunctionInfo("eqslopes", "bⱼ + Σᵢ wᵢ xᵢ", description="weights shared by all units"),
        FunctionInfo("xradial", "f·log|aⱼ| − bⱼ² Σᵢ (wᵢⱼ − xᵢ)²",
                     description="centres, an altitude and a width per unit"),
        FunctionInfo("ehradial", "−bⱼ² Σᵢ (wᵢⱼ − xᵢ)²", description="centres, a width per unit"),
        FunctionInfo("evradial", "f·log|bⱼ| − bⱼ² Σᵢ (wᵢⱼ − xᵢ)²",
                     description="centres, a width per unit that is also its altitude"),
        FunctionInfo("ewradial", "f·log|aⱼ| − b² Σᵢ (wᵢⱼ − xᵢ)²",
                     description="centres, an altitude per unit, one shared width"),
        FunctionInfo("eqradial", "−b² Σᵢ (wᵢⱼ − xᵢ)²", description="centres, one shared width"),
    )
}
RADIAL_COMBINATIONS = ("xradial", "ehradial", "evradial", "ewradial", "eqradial")


@dataclass(frozen=True)
class ObjectiveInfo:
    name: str
    task: str  # "classification" or "regression"
    formula: str


OBJECTIVES: dict[str, ObjectiveInfo] = {
    o.name: o
    for o in (
        ObjectiveInfo("categorical_crossentropy", "classification",
                      "−Σⱼ yⱼ log pⱼ (integer labels or one-hot)"),
        ObjectiveInfo("binary_crossentropy", "classification", "−(y log p + (1−y) log(1−p))"),
        ObjectiveInfo("mse", "regression", "mean((y − p)²)"),
        ObjectiveInfo("mae", "regression", "mean(|y − p|)"),
        ObjectiveInfo("huber", "regression",
                      "mean(½(y − p)² if |y − p| ≤ 1 else |y − p| − ½)"),
    )
}

# The update rule of each optimizer as both backends run it: Keras's own, which the torch
# backend follows (`ml.backends.torch_optim`), with g the gradient, η the learning rate and t the
# step. Note where ε sits: inside the root for Adagrad and RMSprop, and outside it, unscaled by
# the bias correction, for Adam.
OPTIMIZER_UPDATES: dict[str, str] = {
    "sgd": "v ← μ·v − η·g;  w ← w + v  (nesterov: w ← w + μ·v − η·g)",
    "adadelta": "E[g²] ← ρ·E[g²] + (1−ρ)·g²;  Δ ← −√(E[Δ²] + ε) / √(E[g²] + ε) · g;  "
                "E[Δ²] ← ρ·E[Δ²] + (1−ρ)·Δ²;  w ← w + η·Δ",
    "adagrad": "G ← G + g² (G starts at initial_accumulator_value);  w ← w − η·g / √(G + ε)",
    "rmsprop": "E[g²] ← ρ·E[g²] + (1−ρ)·g²;  s ← η·g / √(E[g²] + ε);  w ← w − s  "
               "(centered: E[g] ← ρ·E[g] + (1−ρ)·g and s ← η·g / √(E[g²] − E[g]² + ε); "
               "momentum: m ← μ·m + s and w ← w − m)",
    "adam": "m ← β₁·m + (1−β₁)·g;  v ← β₂·v + (1−β₂)·g²;  α ← η·√(1−β₂ᵗ) / (1−β₁ᵗ);  "
            "w ← w − α·m / (√v + ε)",
    "adamw": "w ← w − η·λ·w (decoupled weight decay λ), then Adam's step",
}

# Keras's formulas, with fans of the canonical layout as Keras computes them: for a kernel
# [*receptive, in, out], fan_in = receptive·in and fan_out = receptive·out.
INITIALIZERS: dict[str, str] = {
    "glorot_uniform": "U(±√(6 / (fan_in + fan_out)))",
    "glorot_normal": "truncated N(0, √(2 / (fan_in + fan_out)))",
    "he_uniform": "U(±√(6 / fan_in))",
    "he_normal": "truncated N(0, √(2 / fan_in))",
    "lecun_uniform": "U(±√(3 / fan_in))",
    "lecun_normal": "truncated N(0, √(1 / fan_in))",
    "orthogonal": "a random orthogonal matrix",
    "random_normal": "N(0, 0.05)",
    "random_uniform": "U(±0.05)",
    "zeros": "0",
    "ones": "1",
}
