"""Fast weight learning rules: how a painter turns keys, values and learning rates into an image.

Shapes used throughout (one fast weight matrix per image channel):
    keys, values     (B, C, T, d)   one key and one value per painting step t
    learning rates   (B, C, T, 1)   one per step, or (B, C, T, d) with per-row learning rates
    W                (B, C, d, d)   rows follow the value, columns the key

Each rule offers `updates`, the parallel form that returns the update vectors U (B, C, T, d)
with W_T = U^T K (so step t adds the rank-1 matrix u_t k_t^T), and `loop`, the step-by-step
reference that tests compare against.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor


def _full_first_step(learning_rates: Tensor) -> Tensor:
    """Set the first step's learning rate to 1 (the original code writes u_1 = v_1)."""
    return torch.cat([torch.ones_like(learning_rates[:, :, :1]), learning_rates[:, :, 1:]], dim=2)


class LearningRule(Protocol):
    def updates(self, keys: Tensor, values: Tensor, learning_rates: Tensor) -> Tensor: ...

    def loop(self, keys: Tensor, values: Tensor, learning_rates: Tensor) -> Tensor: ...


class DeltaRule:
    """W_t = W_{t-1} + b_t (v_t - W_{t-1} k_t) k_t^T, W_0 = 0 (Irie & Schmidhuber 2023, eq. 3).

    With `full_first_step` (the original code's behaviour, our default) the first update ignores
    its learning rate: u_1 = v_1.
    """

    def __init__(self, *, full_first_step: bool = True):
        self.full_first_step = full_first_step

    def _rates(self, learning_rates: Tensor) -> Tensor:
        return _full_first_step(learning_rates) if self.full_first_step else learning_rates

    def updates(self, keys: Tensor, values: Tensor, learning_rates: Tensor) -> Tensor:
        """Parallel form, exact: (I + strictly_lower(diag(b) K K^T)) U = diag(b) V.

        One unit-lower-triangular solve replaces the loop over T; the diagonal is never read.
        """
        b = self._rates(learning_rates)
        gram = keys @ keys.transpose(-1, -2)  # (B, C, T, T): k_t . k_s
        if b.shape[-1] == 1:
            system = torch.tril(b * gram, diagonal=-1)  # row t scaled by b_t
            return torch.linalg.solve_triangular(
                system, b * values, upper=False, unitriangular=True
            )
        # Per-row learning rates: every row i of W solves its own T x T system.
        b_rows = b.transpose(-1, -2).unsqueeze(-1)  # (B, C, d, T, 1)
        system = torch.tril(b_rows * gram.unsqueeze(2), diagonal=-1)  # (B, C, d, T, T)
        rhs = b_rows * values.transpose(-1, -2).unsqueeze(-1)  # (B, C, d, T, 1)
        rows = torch.linalg.solve_triangular(system, rhs, upper=False, unitriangular=True)
        return rows.squeeze(-1).transpose(-1, -2)  # (B, C, T, d)

    def loop(self, keys: Tensor, values: Tensor, learning_rates: Tensor) -> Tensor:
        b = self._rates(learning_rates)
        batch, channels, steps, dim = keys.shape
        weights = keys.new_zeros(batch, channels, dim, dim)
        for t in range(steps):
            k, v = keys[:, :, t], values[:, :, t]  # (B, C, d)
            retrieved = torch.einsum("ncrk,nck->ncr", weights, k)  # W_{t-1} k_t
            u = b[:, :, t] * (v - retrieved)
            weights = weights + u.unsqueeze(-1) * k.unsqueeze(-2)
        return weights


class HebbianRule:
    """Purely additive rule, an ablation: W_t = W_{t-1} + b_t v_t k_t^T."""

    def updates(self, keys: Tensor, values: Tensor, learning_rates: Tensor) -> Tensor:
        return learning_rates * values

    def loop(self, keys: Tensor, values: Tensor, learning_rates: Tensor) -> Tensor:
        batch, channels, steps, dim = keys.shape
        weights = keys.new_zeros(batch, channels, dim, dim)
        for t in range(steps):
            u = learning_rates[:, :, t] * values[:, :, t]
            weights = weights + u.unsqueeze(-1) * keys[:, :, t].unsqueeze(-2)
        return weights


RULES = {"delta": DeltaRule, "hebbian": HebbianRule}


def make_rule(name: str, *, full_first_step: bool = True) -> LearningRule:
    if name == "delta":
        return DeltaRule(full_first_step=full_first_step)
    if name in RULES:
        return RULES[name]()
    raise ValueError(f"unknown learning rule {name!r}; choose one of {sorted(RULES)}")


def fast_weights(updates: Tensor, keys: Tensor) -> Tensor:
    """W_T = U^T K, the sum of the rank-1 updates u_t k_t^T: (B, C, T, d) x2 -> (B, C, d, d)."""
    return torch.einsum("nctr,nctk->ncrk", updates, keys)


def rank_one_updates(updates: Tensor, keys: Tensor) -> Tensor:
    """Every step's rank-1 matrix u_t k_t^T: (B, C, T, d) x2 -> (B, C, T, d, d)."""
    return torch.einsum("nctr,nctk->nctrk", updates, keys)
