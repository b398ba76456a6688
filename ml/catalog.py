"""The vocabulary's functions: activations, combinations, objectives, optimizers, initializers.

No framework is imported here; the backends and the ONNX exporter join these names to their
builders, and `GET /catalog` renders this metadata.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class FunctionInfo:
    name: str
    formula: str
    range: str = ""
    description: str = ""


ACTIVATIONS: dict[str, FunctionInfo] = {
    a.name: a
    for a in (
        FunctionInfo("identity", "g", "(-inf, inf)", "the net input unchanged"),
        FunctionInfo("exponential", "exp(g)", "(0, inf)", "with a radial combination: an RBF unit"),
        FunctionInfo("reciprocal", "1 / g", "(-inf, 0) ∪ (0, inf)"),
        FunctionInfo("square", "g²", "[0, inf)"),
        FunctionInfo("logistic", "1 / (1 + exp(-g))", "(0, 1)"),
        FunctionInfo("softmax", "exp(g_j) / Σ_k exp(g_k)", "(0, 1), sums to 1"),
        FunctionInfo("gauss", "exp(-g²)", "(0, 1]"),
        FunctionInfo("sine", "sin(g)", "[-1, 1]"),
        FunctionInfo("cosine", "cos(g)", "[-1, 1]"),
        FunctionInfo("elliott", "g / (1 + |g|)", "(-1, 1)"),
        FunctionInfo("tanh", "tanh(g)", "(-1, 1)"),
        FunctionInfo("arctan", "(2/π) arctan(g)", "(-1, 1)"),
        FunctionInfo("relu", "max(0, g)", "[0, inf)"),
        FunctionInfo("leaky_relu", "g if g > 0 else 0.01 g", "(-inf, inf)"),
        FunctionInfo("elu", "g if g > 0 else exp(g) - 1", "(-1, inf)"),
        FunctionInfo("selu", "1.0507 (g if g > 0 else 1.6733 (exp(g) - 1))", "(-1.7581, inf)"),
        FunctionInfo("gelu", "g Φ(g) = g (1 + erf(g/√2)) / 2", "(-0.17, inf)"),
        FunctionInfo("softplus", "log(1 + exp(g))", "(0, inf)"),
        FunctionInfo("silu", "g / (1 + exp(-g))", "(-0.28, inf)"),
    )
}
ACTIVATION_ALIASES = {"linear": "identity", "sigmoid": "logistic"}
LEAKY_RELU_SLOPE = 0.01

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
