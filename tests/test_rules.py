"""The parallel learning rules against their step-by-step references, in float64."""

import pytest
import torch

from pipeline.rules import (
    RULES,
    DeltaRule,
    HebbianRule,
    OjaRule,
    fast_weights,
    make_rule,
    rank_one_updates,
)

SHAPES = [  # (B, C, T, d): batch 1, T = 1 and d = 1 included
    (1, 1, 1, 1),
    (1, 3, 1, 4),
    (2, 1, 5, 1),
    (1, 3, 16, 8),
    (3, 2, 9, 5),
    (2, 3, 64, 16),
]
EVERY_RULE = [
    pytest.param(DeltaRule(full_first_step=True), id="delta-full-first-step"),
    pytest.param(DeltaRule(full_first_step=False), id="delta"),
    pytest.param(HebbianRule(), id="hebbian"),
    pytest.param(OjaRule(), id="oja"),
]


def random_inputs(shape, per_row, seed):
    gen = torch.Generator().manual_seed(seed)
    batch, channels, steps, dim = shape
    keys = torch.randn(shape, generator=gen, dtype=torch.float64).softmax(-1)
    # |v|^2 about 1: Oja's rule grows without bound once b |v|^2 > 2 (see OjaRule)
    values = torch.randn(shape, generator=gen, dtype=torch.float64) / dim**0.5
    rates = torch.rand(
        batch, channels, steps, dim if per_row else 1, generator=gen, dtype=torch.float64
    )
    return [t.requires_grad_() for t in (keys, values, rates)]


def assert_parallel_matches_loop(rule, shape, per_row, seed):
    keys, values, rates = random_inputs(shape, per_row, seed)
    loop = rule.loop(keys, values, rates)
    parallel = fast_weights(rule.factors(keys, values, rates))
    torch.testing.assert_close(parallel, loop, rtol=0, atol=1e-10)
    weight = torch.randn(
        loop.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64
    )
    grads_loop = torch.autograd.grad((torch.tanh(loop) * weight).sum(), (keys, values, rates))
    grads_par = torch.autograd.grad((torch.tanh(parallel) * weight).sum(), (keys, values, rates))
    for g_par, g_loop in zip(grads_par, grads_loop):
        torch.testing.assert_close(g_par, g_loop, rtol=0, atol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("rule", EVERY_RULE)
def test_parallel_form_equals_loop(rule, shape, per_row):
    assert_parallel_matches_loop(rule, shape, per_row, seed=sum(shape))


@pytest.mark.parametrize("rule", EVERY_RULE)
def test_partial_images_are_the_loop_stopped_early(rule):
    """Prefix sums of the rank-1 updates are the fast weights after t steps, for every rule."""
    keys, values, rates = random_inputs((2, 3, 6, 5), per_row=True, seed=3)
    partial = rank_one_updates(rule.factors(keys, values, rates)).cumsum(dim=2)
    for t in range(1, 7):
        stopped = rule.loop(keys[:, :, :t], values[:, :, :t], rates[:, :, :t])
        torch.testing.assert_close(partial[:, :, t - 1], stopped, rtol=0, atol=1e-10)


def test_oja_transposed_is_the_delta_rule_with_keys_and_values_swapped():
    keys, values, rates = random_inputs((2, 3, 7, 5), per_row=False, seed=4)
    oja = OjaRule().loop(keys, values, rates)
    delta = DeltaRule(full_first_step=False).loop(values, keys, rates)
    torch.testing.assert_close(oja.transpose(-1, -2), delta, rtol=0, atol=1e-12)


def test_oja_removes_what_the_value_reads_back():
    """With learning rate 1 and a unit value, W^T v equals the last key written with it."""
    dim = 4
    values = torch.eye(dim, dtype=torch.float64)[[2, 2]].reshape(1, 1, 2, dim)
    keys = torch.randn(1, 1, 2, dim, dtype=torch.float64).softmax(-1)
    rates = torch.ones(1, 1, 2, 1, dtype=torch.float64)
    weights = fast_weights(OjaRule().factors(keys, values, rates))
    torch.testing.assert_close(weights[0, 0].T @ values[0, 0, 1], keys[0, 0, 1])


def test_first_step_quirk_writes_the_first_value_unscaled():
    keys, values, rates = random_inputs((2, 3, 4, 5), per_row=False, seed=0)
    with_quirk = DeltaRule(full_first_step=True).factors(keys, values, rates).left
    without = DeltaRule(full_first_step=False).factors(keys, values, rates).left
    torch.testing.assert_close(with_quirk[:, :, 0], values[:, :, 0])
    torch.testing.assert_close(without[:, :, 0], rates[:, :, 0] * values[:, :, 0])


def test_first_step_quirk_concerns_the_delta_rule_only():
    keys, values, rates = random_inputs((1, 2, 3, 4), per_row=False, seed=1)
    for name in ("hebbian", "oja"):
        rule = make_rule(name, full_first_step=True)
        torch.testing.assert_close(
            rule.factors(keys, values, rates).left[:, :, 0], rates[:, :, 0] * values[:, :, 0]
        )
    assert sorted(RULES) == ["delta", "hebbian", "oja"]


def test_delta_rule_overwrites_what_a_key_retrieves():
    """With learning rate 1 and a one-hot key, W k equals the last value written to that key."""
    dim = 4
    keys = torch.eye(dim, dtype=torch.float64)[[1, 1]].reshape(1, 1, 2, dim)
    values = torch.randn(1, 1, 2, dim, dtype=torch.float64)
    rates = torch.ones(1, 1, 2, 1, dtype=torch.float64)
    weights = fast_weights(DeltaRule().factors(keys, values, rates))
    torch.testing.assert_close(weights[0, 0] @ keys[0, 0, 1], values[0, 0, 1])


def test_partial_images_sum_to_the_final_image():
    keys, values, rates = random_inputs((2, 3, 6, 5), per_row=False, seed=3)
    factors = DeltaRule().factors(keys, values, rates)
    partial = rank_one_updates(factors).cumsum(dim=2)
    torch.testing.assert_close(partial[:, :, -1], fast_weights(factors))


def test_unknown_rule_names_the_choices():
    with pytest.raises(ValueError, match="choose one of"):
        make_rule("anti-hebbian")
