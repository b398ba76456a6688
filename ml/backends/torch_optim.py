"""Optimizers for torch that follow Keras's update formulas exactly.

torch and Keras place epsilon differently in Adam, RMSprop and Adagrad (Keras adds it inside
the square root, or scales it by Adam's bias correction); one spec must mean one update rule,
so these implement Keras's. SGD and Adadelta already agree and use torch's own.
"""

import math
from collections.abc import Callable
from typing import Any, overload

import torch
from torch.optim.optimizer import ParamsT


class KerasOptimizer(torch.optim.Optimizer):
    """Steps each parameter that has a gradient by `update`, one optimizer's rule."""

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:  # it recomputes the loss, with gradients, as torch's take it
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update(group, p, p.grad, self.state[p])
        return loss

    def update(self, group: dict[str, Any], p: torch.Tensor, grad: torch.Tensor,
               state: dict[str, Any]) -> None:
        """Move `p` by its gradient; `state` is the parameter's own, empty at first."""
        raise NotImplementedError


class KerasAdam(KerasOptimizer):
    """Adam (and AdamW with `weight_decay`): variable −= α·m / (√v + ε), α = lr·√(1−β₂ᵗ)/(1−β₁ᵗ)."""

    def __init__(self, params: ParamsT, lr: float, beta_1: float, beta_2: float, epsilon: float,
                 weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "beta_1": beta_1, "beta_2": beta_2,
                                  "epsilon": epsilon, "weight_decay": weight_decay})

    def update(self, group: dict[str, Any], p: torch.Tensor, grad: torch.Tensor,
               state: dict[str, Any]) -> None:
        lr, b1, b2 = group["lr"], group["beta_1"], group["beta_2"]
        if not state:
            state["step"] = 0
            state["m"] = torch.zeros_like(p)
            state["v"] = torch.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        if group["weight_decay"]:  # decoupled, before the update, as Keras
            p.mul_(1 - group["weight_decay"] * lr)
        alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        state["m"].lerp_(grad, 1 - b1)
        state["v"].mul_(b2).addcmul_(grad, grad, value=1 - b2)
        p.addcdiv_(state["m"], state["v"].sqrt().add_(group["epsilon"]), value=-alpha)


class KerasRMSprop(KerasOptimizer):
    """velocity = ρ·velocity + (1−ρ)·g²; variable −= lr·g / √(velocity + ε) (+ momentum)."""

    def __init__(self, params: ParamsT, lr: float, rho: float, momentum: float, epsilon: float,
                 centered: bool):
        super().__init__(params, {"lr": lr, "rho": rho, "momentum": momentum,
                                  "epsilon": epsilon, "centered": centered})

    def update(self, group: dict[str, Any], p: torch.Tensor, grad: torch.Tensor,
               state: dict[str, Any]) -> None:
        rho = group["rho"]
        if not state:
            state["velocity"] = torch.zeros_like(p)
            state["average_grad"] = torch.zeros_like(p)
            state["momentum"] = torch.zeros_like(p)
        state["velocity"].mul_(rho).addcmul_(grad, grad, value=1 - rho)
        denominator = state["velocity"]
        if group["centered"]:
            state["average_grad"].mul_(rho).add_(grad, alpha=1 - rho)
            denominator = denominator - state["average_grad"].square()
        increment = group["lr"] * grad / (denominator + group["epsilon"]).sqrt()
        if group["momentum"] > 0:
            state["momentum"].mul_(group["momentum"]).add_(increment)
            increment = state["momentum"]
        p.sub_(increment)


class KerasAdagrad(KerasOptimizer):
    """accumulator += g²; variable −= lr·g / √(accumulator + ε)."""

    def __init__(self, params: ParamsT, lr: float, initial_accumulator_value: float,
                 epsilon: float):
        super().__init__(params, {"lr": lr, "initial": initial_accumulator_value,
                                  "epsilon": epsilon})

    def update(self, group: dict[str, Any], p: torch.Tensor, grad: torch.Tensor,
               state: dict[str, Any]) -> None:
        if not state:
            state["accumulator"] = torch.full_like(p, group["initial"])
        state["accumulator"].addcmul_(grad, grad)
        p.addcdiv_(grad, (state["accumulator"] + group["epsilon"]).sqrt(), value=-group["lr"])
