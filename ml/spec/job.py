"""A whole job body: the model (input, layers, objective), the training block (optimizer, epochs,
early stopping), the dataset, framework and device."""

from typing import Annotated, Literal, get_args

from pydantic import (
    Field,
)

from ml.catalog import (
    LOGIT_ACTIVATIONS,
    OBJECTIVES,
)
from ml.spec.base import (
    ObjectiveName,
    PositiveFloat,
    PositiveInt,
    Probability,
    StrictModel,
    type_name,
)
from ml.spec.layers import AnyLayer


class InputSpec(StrictModel):
    shape: Annotated[list[PositiveInt], Field(min_length=1, max_length=4)] = Field(
        description="one sample's shape, channels last: [features], [timesteps, features] or "
                    "[height, width, channels]")
    dtype: Literal["float32"] = Field("float32", description="the type of the input's values")


class ModelSpec(StrictModel):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")] = Field(
        description="the registry's name for the model: a job that succeeds publishes a new "
                    "version of it")
    input: InputSpec = Field(description="what the model reads")
    layers: Annotated[list[AnyLayer], Field(min_length=1)] = Field(
        description="the layers, in order, each with its type and parameters (see layers)")
    objective: ObjectiveName = Field(description="the loss training minimizes "
                                                 "(see objectives)")

    @property
    def output_activation(self) -> str | None:
        return self.layers[-1].output_activation

    @property
    def from_logits(self) -> bool:
        """Whether the last layer's activation is folded into the loss (softmax/logistic + CE).

        Both backends then train on the last layer's net input (the logits) and apply the
        activation only at inference, for numerical stability.
        """
        return LOGIT_ACTIVATIONS.get(self.output_activation or "") == self.objective

    @property
    def task(self) -> str:
        return OBJECTIVES[self.objective].task


# Parameters several optimizers share, named by their symbols in the update rules
# (`ml.catalog.OPTIMIZER_UPDATES`).
LearningRate = Annotated[PositiveFloat, Field(description="η: the size of each step")]
Epsilon = Annotated[PositiveFloat, Field(
    description="ε: keeps the update's denominator away from zero")]
Momentum = Annotated[float, Field(ge=0.0, lt=1.0, description=(
    "μ: the share of the previous step carried into the next (0: none)"))]


class Optimizer(StrictModel):
    """Defaults are stated here once and passed explicitly to both frameworks."""

    type: str
    learning_rate: LearningRate


class SGD(Optimizer):
    type: Literal["sgd"]
    learning_rate: LearningRate = 0.01
    momentum: Momentum = 0.0
    nesterov: bool = Field(False, description="take the gradient's step from where the "
                                              "momentum leads (Nesterov's momentum)")


class Adadelta(Optimizer):
    type: Literal["adadelta"]
    learning_rate: LearningRate = 1.0  # Zeiler's; Keras's default (0.001) barely moves
    rho: Probability = Field(0.95, description="ρ: how much of the running averages of "
                                               "squared gradients and steps each step keeps")
    epsilon: Epsilon = 1e-6


class Adagrad(Optimizer):
    type: Literal["adagrad"]
    learning_rate: LearningRate = 0.01
    initial_accumulator_value: Annotated[float, Field(ge=0.0)] = Field(
        0.1, description="where the sum of squared gradients G starts")
    epsilon: Epsilon = 1e-7


class RMSprop(Optimizer):
    type: Literal["rmsprop"]
    learning_rate: LearningRate = 0.001
    rho: Probability = Field(0.9, description="ρ: how much of the running average of squared "
                                              "gradients each step keeps")
    momentum: Momentum = 0.0
    epsilon: Epsilon = 1e-7
    centered: bool = Field(False, description="divide by the gradients' variance rather than "
                                              "their mean square")


# Adam's parameters, which AdamW shares (an AdamW is not an Adam: its `type` differs). No
# docstring: the schema describes Adam and AdamW by Optimizer's.
class AdaptiveMoments(Optimizer):
    learning_rate: LearningRate = 0.001
    beta_1: Probability = Field(0.9, description="β₁: how much of the running mean of "
                                                 "gradients m each step keeps")
    beta_2: Probability = Field(0.999, description="β₂: how much of the running mean of "
                                                   "squared gradients v each step keeps")
    epsilon: Epsilon = 1e-7


class Adam(AdaptiveMoments):
    type: Literal["adam"]


class AdamW(AdaptiveMoments):
    type: Literal["adamw"]
    weight_decay: Annotated[float, Field(ge=0.0)] = Field(
        0.004, description="λ: each step also shrinks every weight by η·λ times itself, apart "
                           "from the gradient")


AnyOptimizer = Annotated[SGD | Adadelta | Adagrad | RMSprop | Adam | AdamW,
                         Field(discriminator="type")]
OPTIMIZER_TYPES: dict[str, type[Optimizer]] = {
    type_name(cls): cls for cls in get_args(get_args(AnyOptimizer)[0])}


class EarlyStopping(StrictModel):
    monitor: Literal["loss", "val_loss", "val_accuracy", "val_mae"] = Field(
        "val_loss", description="the per-epoch metric watched")
    patience: PositiveInt = Field(5, description="how many epochs in a row without an "
                                                 "improvement stop the training")
    min_delta: Annotated[float, Field(ge=0.0)] = Field(
        0.0, description="the least change of the metric that counts as an improvement")


class TrainingSpec(StrictModel):
    optimizer: AnyOptimizer = Field(Adam(type="adam"), description=(
        "how the weights move: one of the optimizers, with its parameters"))
    epochs: PositiveInt = Field(10, description="how many passes over the training split")
    batch_size: PositiveInt = Field(32, description="how many samples each step's gradient "
                                                    "averages over")
    validation_split: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        0.2, description="the share of the samples outside the test split that validate each "
                         "epoch instead of training")
    seed: Annotated[int, Field(ge=0, lt=2**31)] = Field(
        0, description="seeds the splits and every random draw of training: the initial "
                         "weights, the order of the batches, dropout")
    early_stopping: EarlyStopping | None = Field(
        None, description="stop once a metric has stopped improving (none: train every epoch)")
    preprocessing: Literal["auto", "standardize", "minmax", "none"] = Field(
        "auto", description="how features are scaled, with the training split's statistics: "
                            "auto standardizes tabular features and min-max scales images")


DatasetRef = Annotated[str, Field(min_length=1, max_length=200, description=(
    "the dataset to train on: builtin:NAME or an upload's id"))]
Framework = Annotated[Literal["tensorflow", "pytorch"], Field(
    description="which framework trains the model")]
Device = Annotated[Literal["auto", "cpu", "cuda"], Field(
    description="where it trains: cuda on a GPU worker (refused when none is alive), cpu, or "
                "auto: a GPU worker if one is alive, else the CPU")]


class JobSpec(StrictModel):
    model: ModelSpec = Field(description="the architecture and its objective")
    training: TrainingSpec = Field(TrainingSpec(), description="how it trains")
    dataset: DatasetRef
    framework: Framework = "pytorch"
    device: Device = "auto"


class Draft(StrictModel):
    """What `POST /specs/validate` checks: a model, and optionally the rest of a job."""

    model: ModelSpec
    training: TrainingSpec = TrainingSpec()
    dataset: DatasetRef | None = None
    framework: Framework = "pytorch"
    device: Device = "auto"
