"""Fast weight learning rules: how a painter turns keys, values and learning rates into an image.

Shapes used throughout (one fast weight matrix per image channel):
    keys, values     (B, C, T, d)   one key and one value per painting step t
    learning rates   (B, C, T, 1)   one per step, or (B, C, T, d) with per-row learning rates
    W                (B, C, d, d)   rows follow the value, columns the key

Each rule offers `factors`, the parallel form that returns the two factors of its T rank-1
updates (step t adds left_t right_t^T, so W_T = L^T R and every partial image W_t is a prefix
sum), and `loop`, the step-by-step reference that tests compare against.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch
from torch import Tensor


class RankOneFactors(NamedTuple):
    """The T rank-1 updates of a painting: step t adds the matrix left_t right_t^T to W."""

    left: Tensor  # (B, C, T, d) the row side of each update (it follows the value)
    right: Tensor  # (B, C, T, d) the column side of each update (it follows the key)


def _full_first_step(learning_rates: Tensor) -> Tensor:
    """Set the first step's learning rate to 1 (the original code writes u_1 = v_1)."""
    return torch.cat([torch.ones_like(learning_rates[:, :, :1]), learning_rates[:, :, 1:]], dim=2)


def _solve_unit_lower(system: Tensor, rhs: Tensor) -> Tensor:
    """X with (I + strictly_lower(system)) X = rhs. The solve reads only the strictly lower
    triangle (unitriangular: the diagonal is taken as 1), and its gradient is strictly lower too,
    so no masked copy of `system` is made (tests compare with the loop in float64)."""
    return torch.linalg.solve_triangular(system, rhs, upper=False, unitriangular=True)


class LearningRule(Protocol):
    def factors(self, keys: Tensor, values: Tensor, learning_rates: Tensor) -> RankOneFactors: ...

    def loop(self, keys: Tensor, values: Tensor, learning_rates: Tensor) -> Tensor: ...


class DeltaRule:
    """W_t = W_{t-1} + b_t (v_t - W_{t-1} k_t) k_t^T, W_0 = 0 (Irie & Schmidhuber 2023, eq. 3).

    Factors (u_t, k_t) with u_t = b_t (v_t - W_{t-1} k_t). With `full_first_step` (the original
    code's behaviour, our default) the first update ignores its learning rate: u_1 = v_1.
    """

    def __init__(self, *, full_first_step: bool = True):
        self.full_first_step = full_first_step

    def _rates(self, learning_rates: Tensor) -> Tensor:
        return _full_first_step(learning_rates) if self.full_first_step else learning_rates

    def factors(self, keys: Tensor, values: Tensor, learning_rates: Tensor) -> RankOneFactors:
        """Parallel form, exact: (I + strictly_lower(diag(b) K K^T)) U = diag(b) V.

        One unit-lower-triangular solve replaces the loop over T.
        """
        b = self._rates(learning_rates)
        gram = keys @ keys.transpose(-1, -2)  # (B, C, T, T): k_t . k_s
        if b.shape[-1] == 1:
            return RankOneFactors(_solve_unit_lower(b * gram, b * values), keys)  # row t * b_t
        # Per-row learning rates: every row i of W solves its own T x T system.
        b_rows = b.transpose(-1, -2).unsqueeze(-1)  # (B, C, d, T, 1)
        rhs = b_rows * values.transpose(-1, -2).unsqueeze(-1)  # (B, C, d, T, 1)
        rows = _solve_unit_lower(b_rows * gram.unsqueeze(2), rhs)  # (B, C, d, T, 1)
        return RankOneFactors(rows.squeeze(-1).transpose(-1, -2), keys)  # (B, C, T, d)

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
    """Purely additive rule, an ablation: W_t = W_{t-1} + b_t v_t k_t^T; factors (b_t v_t, k_t).

    Always scales the first update by b_1 (`full_first_step` concerns the delta rule only).
    """

    def factors(self, keys: Tensor, values: Tensor, learning_rates: Tensor) -> RankOneFactors:
        return RankOneFactors(learning_rates * values, keys)

    def loop(self, keys: Tensor, values: Tensor, learning_rates: Tensor) -> Tensor:
        batch, channels, steps, dim = keys.shape
        weights = keys.new_zeros(batch, channels, dim, dim)
        for t in range(steps):
            u = learning_rates[:, :, t] * values[:, :, t]
            weights = weights + u.unsqueeze(-1) * keys[:, :, t].unsqueeze(-2)
        return weights


class OjaRule:
    """Oja's rule with the value as the neuron's output, an ablation (Oja 1982, fast weight form):
    W_t = W_{t-1} + b_t v_t (k_t - W_{t-1}^T v_t)^T, W_0 = 0.

    Transposed, W^T follows the delta rule with the roles swapped: v_t is the key that reads
    W^T and k_t the value written. Factors (b_t v_t, r_t) with r_t = k_t - W_{t-1}^T v_t; per-row
    learning rates scale the rows of each update: (b_t * v_t) r_t^T.

    Stable only while 0 < b_t |v_t|^2 < 2: each step multiplies what W^T reads along v_t by
    1 - b_t |v_t|^2, so larger values make W grow without bound (values are not normalised).

    No first-step quirk: the original code's Oja painter scales its first update by b_1 like
    every other, so `full_first_step` concerns the delta rule only. That painter also passes
    r_t through a second softmax; this makes the update non-linear in W (no parallel form)
    and is left out here.
    """

    def factors(self, keys: Tensor, values: Tensor, learning_rates: Tensor) -> RankOneFactors:
        """Parallel form, exact: (I + strictly_lower(V (diag(b) V)^T)) R = K.

        r_t = k_t - sum_{s<t} (v_t . b_s v_s) r_s: one unit-lower-triangular solve with the Gram
        matrix of the values (column s scaled by b_s), for one or per-row learning rates alike.
        """
        left = learning_rates * values  # (B, C, T, d): b_t v_t
        gram = values @ left.transpose(-1, -2)  # (B, C, T, T): v_t . (b_s v_s)
        return RankOneFactors(left, _solve_unit_lower(gram, keys))

    def loop(self, keys: Tensor, values: Tensor, learning_rates: Tensor) -> Tensor:
        batch, channels, steps, dim = keys.shape
        weights = keys.new_zeros(batch, channels, dim, dim)
        for t in range(steps):
            k, v = keys[:, :, t], values[:, :, t]  # (B, C, d)
            retrieved = torch.einsum("ncrk,ncr->nck", weights, v)  # W_{t-1}^T v_t
            left = learning_rates[:, :, t] * v
            weights = weights + left.unsqueeze(-1) * (k - retrieved).unsqueeze(-2)
        return weights


RULES = {"delta": DeltaRule, "hebbian": HebbianRule, "oja": OjaRule}


def make_rule(name: str, *, full_first_step: bool = True) -> LearningRule:
    """The rule called `name`; `full_first_step` only changes the delta rule."""
    if name not in RULES:
        raise ValueError(f"unknown learning rule {name!r}; choose one of {sorted(RULES)}")
    return DeltaRule(full_first_step=full_first_step) if name == "delta" else RULES[name]()


def fast_weights(factors: RankOneFactors) -> Tensor:
    """W_T = L^T R, the sum of the rank-1 updates left_t right_t^T: -> (B, C, d, d)."""
    return torch.einsum("nctr,nctk->ncrk", factors.left, factors.right)


def rank_one_updates(factors: RankOneFactors) -> Tensor:
    """Every step's rank-1 matrix left_t right_t^T: -> (B, C, T, d, d)."""
    return torch.einsum("nctr,nctk->nctrk", factors.left, factors.right)
