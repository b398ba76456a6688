"""A whole job body: the model (input, layers, objective), the training block (optimizer, epochs,
early stopping), the dataset, framework and device."""

from typing import Annotated, Literal

from pydantic import (
    Field,
)

from ml.catalog import (
    LOGIT_ACTIVATIONS,
    OBJECTIVES,
)
from ml.spec.base import ObjectiveName, PositiveFloat, PositiveInt, Probability, StrictModel
from ml.spec.layers import AnyLayer


class InputSpec(StrictModel):
    shape: Annotated[list[PositiveInt], Field(min_length=1, max_length=4)]
    dtype: Literal["float32"] = "float32"


class ModelSpec(StrictModel):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")]
    input: InputSpec
    layers: Annotated[list[AnyLayer], Field(min_length=1)]
    objective: ObjectiveName

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


class Optimizer(StrictModel):
    """Defaults are stated here once and passed explicitly to both frameworks."""

    type: str
    learning_rate: PositiveFloat


class SGD(Optimizer):
    type: Literal["sgd"]
    learning_rate: PositiveFloat = 0.01
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    nesterov: bool = False


class Adadelta(Optimizer):
    type: Literal["adadelta"]
    learning_rate: PositiveFloat = 1.0  # Zeiler's; Keras's default (0.001) barely moves
    rho: Probability = 0.95
    epsilon: PositiveFloat = 1e-6


class Adagrad(Optimizer):
    type: Literal["adagrad"]
    learning_rate: PositiveFloat = 0.01
    initial_accumulator_value: Annotated[float, Field(ge=0.0)] = 0.1
    epsilon: PositiveFloat = 1e-7


class RMSprop(Optimizer):
    type: Literal["rmsprop"]
    learning_rate: PositiveFloat = 0.001
    rho: Probability = 0.9
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    epsilon: PositiveFloat = 1e-7
    centered: bool = False


class Adam(Optimizer):
    type: Literal["adam"]
    learning_rate: PositiveFloat = 0.001
    beta_1: Probability = 0.9
    beta_2: Probability = 0.999
    epsilon: PositiveFloat = 1e-7


class AdamW(Adam):
    type: Literal["adamw"]
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.004


OPTIMIZER_TYPES: dict[str, type[Optimizer]] = {
    cls.model_fields["type"].annotation.__args__[0]: cls
    for cls in (SGD, Adadelta, Adagrad, RMSprop, Adam, AdamW)}
AnyOptimizer = Annotated[SGD | Adadelta | Adagrad | RMSprop | Adam | AdamW,
                         Field(discriminator="type")]


class EarlyStopping(StrictModel):
    monitor: Literal["loss", "val_loss", "val_accuracy", "val_mae"] = "val_loss"
    patience: PositiveInt = 5
    min_delta: Annotated[float, Field(ge=0.0)] = 0.0


class TrainingSpec(StrictModel):
    optimizer: AnyOptimizer = Adam(type="adam")
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 32
    validation_split: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    seed: Annotated[int, Field(ge=0, lt=2**31)] = 0
    early_stopping: EarlyStopping | None = None
    # "auto": standardize tabular features, min-max scale images.
    preprocessing: Literal["auto", "standardize", "minmax", "none"] = "auto"


DatasetRef = Annotated[str, Field(min_length=1, max_length=200)]
Framework = Literal["tensorflow", "pytorch"]
Device = Literal["auto", "cpu", "cuda"]


class JobSpec(StrictModel):
    model: ModelSpec
    training: TrainingSpec = TrainingSpec()
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
