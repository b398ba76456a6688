"""What a spec computes before it trains: each layer's output shape, parameters and multiply-adds,
the limits it must keep and the dataset it must fit."""

import math
from collections.abc import Mapping
from typing import Any

from pydantic import (
    BaseModel,
)

from ml.errors import SpecError, SpecIssue
from ml.spec.base import Shape, ShapeError
from ml.spec.job import Draft, JobSpec, ModelSpec
from ml.spec.layers import Layer, Nested


class LayerReport(BaseModel):
    index: int
    type: str
    output_shape: list[int]
    params: int
    multiply_adds: int  # of one sample's forward pass, roughly
    # A time_distributed or residual layer's block, a report per layer (index: its place in
    # the block); the shapes of a time_distributed block are one time step's.
    block: list["LayerReport"] | None = None


def _block_reports(layer: Layer, shape: Shape) -> list[LayerReport] | None:
    """The reports of a layer's block, if it holds one; its input shape is valid."""
    if not isinstance(layer, Nested):
        return None
    shapes = layer.member_shapes(layer.inner_shape(shape))
    return [LayerReport(index=j, type=member.layer.type, output_shape=list(out),
                        params=member.layer.param_count(member_shape),
                        multiply_adds=member.layer.multiply_adds(member_shape),
                        block=_block_reports(member.layer, member_shape))
            for j, (member, member_shape, out) in enumerate(zip(layer.members(), shapes[:-1],
                                                                shapes[1:], strict=True))]


class Analysis(BaseModel):
    input_shape: list[int]
    layers: list[LayerReport]
    total_params: int
    total_multiply_adds: int
    output_shape: list[int]


def analyze(model: ModelSpec, max_params: int | None = None) -> Analysis:
    """Infer every layer's output shape, parameters and multiply-adds; raise `SpecError` on
    any problem."""
    analysis, issues = inspect_model(model, max_params)
    if issues:
        raise SpecError(issues)
    return analysis


def inspect_model(model: ModelSpec,
                  max_params: int | None = None) -> tuple[Analysis, list[SpecIssue]]:
    """The shapes, parameters and multiply-adds that can be inferred, and every problem found.

    Shape inference stops at the first layer that cannot take its input (the shapes after it
    are unknown); every other problem is reported with it.
    """
    issues: list[SpecIssue] = []
    shape: Shape = tuple(model.input.shape)
    reports = []
    for index, layer in enumerate(model.layers):
        path = f"model.layers[{index}]"
        if layer.type == "embedding" and index != 0:
            issues.append(SpecIssue(f"{path}.type", "embedding must be the first layer: it reads "
                                                    "integer ids from the input", layer.type))
        try:
            params, multiply_adds = layer.param_count(shape), layer.multiply_adds(shape)
            block = _block_reports(layer, shape)
            shape = layer.output_shape(shape)
        except ShapeError as error:
            field = f"{path}.{error.field}" if error.field else path
            issues.append(SpecIssue(field, str(error), error.value))
            break
        reports.append(LayerReport(index=index, type=layer.type, output_shape=list(shape),
                                   params=params, multiply_adds=multiply_adds, block=block))
    total = sum(r.params for r in reports)
    if max_params is not None and total > max_params:
        issues.append(SpecIssue("model.layers", f"{total} parameters exceed the limit of "
                                                f"{max_params}", total))
    if len(reports) == len(model.layers):
        issues.extend(_output_issues(model, shape))
    return Analysis(input_shape=list(model.input.shape), layers=reports, total_params=total,
                    total_multiply_adds=sum(r.multiply_adds for r in reports),
                    output_shape=list(shape)), issues


def _output_issues(model: ModelSpec, shape: Shape) -> list[SpecIssue]:
    issues = []
    last = f"model.layers[{len(model.layers) - 1}]"
    activation = model.output_activation
    if model.objective == "categorical_crossentropy" and activation != "softmax":
        issues.append(SpecIssue(f"{last}.activation",
                                "categorical_crossentropy expects the last layer to have a "
                                "softmax activation", activation))
    if model.objective == "binary_crossentropy" and (activation != "logistic" or shape[-1] != 1):
        issues.append(SpecIssue(last, "binary_crossentropy expects the last layer to be one "
                                      "unit with a logistic activation",
                                {"units": shape[-1], "activation": activation}))
    if len(shape) > 2:
        issues.append(SpecIssue(last, f"the output must be one vector per sample or one per "
                                      f"time step, received shape {list(shape)}; add a flatten "
                                      "or global pooling layer", list(shape)))
    return issues


def expected_output(model: ModelSpec, dataset: Mapping[str, Any]) -> Shape:
    """The output shape a dataset's targets ask of a model: for classification, the class
    scores of each sample or of each time step; for regression, the targets' own shape."""
    target_shape = tuple(dataset["target_shape"] or ())
    if dataset["task"] == "regression":
        return target_shape or (1,)
    units = 1 if model.objective == "binary_crossentropy" else dataset["num_classes"]
    return (*target_shape, units)


def fits_targets(output_shape: Shape, expected: Shape) -> bool:
    """Whether outputs hold the targets' values in their order: a trailing axis of one may be
    added or dropped ([5] and [5, 1] hold the same values), and all may be one flat vector."""
    return (output_shape in (expected, (*expected, 1), (math.prod(expected),))
            or (*output_shape, 1) == expected)


def check_dataset_fit(spec: JobSpec | Draft, dataset: Mapping[str, Any],
                      analysis: Analysis) -> None:
    """Refuse a job whose input, output, objective or split does not fit the dataset's schema."""
    from ml.datasets import split_problem

    model = spec.model
    issues = []
    problem = split_problem(dataset["num_samples"], dataset["num_classes"],
                            spec.training.validation_split, dataset.get("test_samples"))
    if problem:
        issues.append(SpecIssue("training.validation_split", problem,
                                spec.training.validation_split))
    feature_shape = dataset["feature_shape"]
    if math.prod(feature_shape) != math.prod(model.input.shape):
        issues.append(SpecIssue(
            "model.input.shape",
            f"{model.input.shape} does not fit the dataset's features {feature_shape}",
            model.input.shape,
        ))
    task = dataset["task"]
    output_shape, expected = tuple(analysis.output_shape), expected_output(model, dataset)
    last = f"model.layers[{len(model.layers) - 1}]"
    if model.task != task:
        issues.append(SpecIssue(
            "model.objective", f"{model.objective} is for {model.task}, but dataset "
                               f"'{dataset['id']}' is a {task} task", model.objective))
    elif model.objective == "binary_crossentropy" and dataset["num_classes"] != 2:
        issues.append(SpecIssue("model.objective", f"binary_crossentropy needs 2 classes, "
                                f"dataset '{dataset['id']}' has {dataset['num_classes']}",
                                model.objective))
    elif output_shape[:-1] == expected[:-1] and not fits_targets(output_shape, expected):
        # The right shape but for the last axis: the last layer's units are at fault.
        targets = (f"{dataset['num_classes']} classes" if task == "classification"
                   else f"targets of shape {dataset['target_shape']}")
        issues.append(SpecIssue(
            f"{last}.units", f"{output_shape[-1]} outputs, but dataset '{dataset['id']}' has "
                             f"{targets} (expected {expected[-1]})", output_shape[-1]))
    elif not fits_targets(output_shape, expected):
        if task == "regression":
            asked = "the shape of its targets"
        elif dataset["target_shape"]:
            asked = f"class scores at each of its {dataset['target_shape'][0]} time steps"
        else:
            asked = "class scores for each sample"
        issues.append(SpecIssue(
            last, f"the output has shape {list(output_shape)}, but dataset '{dataset['id']}' "
                  f"asks for {list(expected)}: {asked}", list(output_shape)))
    if issues:
        raise SpecError(issues)
