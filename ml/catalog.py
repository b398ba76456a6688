"""The vocabulary's functions: activations, objectives and optimizers with their metadata.

No framework is imported here; the backends join these names to their builders.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ActivationInfo:
    name: str
    formula: str
    range: str


ACTIVATIONS: dict[str, ActivationInfo] = {
    a.name: a
    for a in (
        ActivationInfo("identity", "g", "(-inf, inf)"),
        ActivationInfo("relu", "max(0, g)", "[0, inf)"),
        ActivationInfo("tanh", "tanh(g)", "(-1, 1)"),
        ActivationInfo("logistic", "1 / (1 + exp(-g))", "(0, 1)"),
        ActivationInfo("softmax", "exp(g_j) / sum_k exp(g_k)", "(0, 1), sums to 1"),
    )
}
ACTIVATION_ALIASES = {"linear": "identity", "sigmoid": "logistic"}

# Output activations whose cross-entropy both backends compute from logits, for stability.
LOGIT_ACTIVATIONS = {"softmax": "categorical_crossentropy", "logistic": "binary_crossentropy"}


@dataclass(frozen=True)
class ObjectiveInfo:
    name: str
    task: str  # "classification" or "regression"
    formula: str


OBJECTIVES: dict[str, ObjectiveInfo] = {
    o.name: o
    for o in (
        ObjectiveInfo(
            "categorical_crossentropy", "classification",
            "-sum_j y_j log p_j (integer labels or one-hot)",
        ),
        ObjectiveInfo("binary_crossentropy", "classification", "-(y log p + (1-y) log(1-p))"),
        ObjectiveInfo("mse", "regression", "mean((y - p)^2)"),
    )
}
