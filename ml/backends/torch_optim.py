"""Optimizers for torch that follow Keras's update formulas exactly.

torch and Keras place epsilon differently in Adam, RMSprop and Adagrad (Keras adds it inside
the square root, or scales it by Adam's bias correction); one spec must mean one update rule,
so these implement Keras's. SGD and Adadelta already agree and use torch's own.
"""

import math

import torch


class KerasAdam(torch.optim.Optimizer):
    """Adam (and AdamW with `weight_decay`): variable −= α·m / (√v + ε), α = lr·√(1−β₂ᵗ)/(1−β₁ᵗ)."""

    def __init__(self, params, lr: float, beta_1: float, beta_2: float, epsilon: float,
                 weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "beta_1": beta_1, "beta_2": beta_2,
                                  "epsilon": epsilon, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, b1, b2 = group["lr"], group["beta_1"], group["beta_2"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                if group["weight_decay"]:  # decoupled, before the update, as Keras
                    p.mul_(1 - group["weight_decay"] * lr)
                alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                state["m"].lerp_(p.grad, 1 - b1)
                state["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                p.addcdiv_(state["m"], state["v"].sqrt().add_(group["epsilon"]), value=-alpha)


class KerasRMSprop(torch.optim.Optimizer):
    """velocity = ρ·velocity + (1−ρ)·g²; variable −= lr·g / √(velocity + ε) (+ momentum)."""

    def __init__(self, params, lr: float, rho: float, momentum: float, epsilon: float,
                 centered: bool):
        super().__init__(params, {"lr": lr, "rho": rho, "momentum": momentum,
                                  "epsilon": epsilon, "centered": centered})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            rho = group["rho"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["velocity"] = torch.zeros_like(p)
                    state["average_grad"] = torch.zeros_like(p)
                    state["momentum"] = torch.zeros_like(p)
                state["velocity"].mul_(rho).addcmul_(p.grad, p.grad, value=1 - rho)
                denominator = state["velocity"]
                if group["centered"]:
                    state["average_grad"].mul_(rho).add_(p.grad, alpha=1 - rho)
                    denominator = denominator - state["average_grad"].square()
                increment = group["lr"] * p.grad / (denominator + group["epsilon"]).sqrt()
                if group["momentum"] > 0:
                    state["momentum"].mul_(group["momentum"]).add_(increment)
                    increment = state["momentum"]
                p.sub_(increment)


class KerasAdagrad(torch.optim.Optimizer):
    """accumulator += g²; variable −= lr·g / √(accumulator + ε)."""

    def __init__(self, params, lr: float, initial_accumulator_value: float, epsilon: float):
        super().__init__(params, {"lr": lr, "initial": initial_accumulator_value,
                                  "epsilon": epsilon})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["accumulator"] = torch.full_like(p, group["initial"])
                state["accumulator"].addcmul_(p.grad, p.grad)
                p.addcdiv_(p.grad, (state["accumulator"] + group["epsilon"]).sqrt(),
                           value=-group["lr"])
