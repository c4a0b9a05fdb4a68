"""The parallel learning rules against their step-by-step references, in float64."""

import pytest
import torch

from pipeline.rules import DeltaRule, HebbianRule, fast_weights, rank_one_updates

SHAPES = [  # (B, C, T, d): batch 1, T = 1 and d = 1 included
    (1, 1, 1, 1),
    (1, 3, 1, 4),
    (2, 1, 5, 1),
    (1, 3, 16, 8),
    (3, 2, 9, 5),
    (2, 3, 64, 16),
]


def random_inputs(shape, per_row, seed):
    gen = torch.Generator().manual_seed(seed)
    batch, channels, steps, dim = shape
    keys = torch.randn(shape, generator=gen, dtype=torch.float64).softmax(-1)
    values = torch.randn(shape, generator=gen, dtype=torch.float64)
    rates = torch.rand(
        batch, channels, steps, dim if per_row else 1, generator=gen, dtype=torch.float64
    )
    return [t.requires_grad_() for t in (keys, values, rates)]


def assert_parallel_matches_loop(rule, shape, per_row, seed):
    keys, values, rates = random_inputs(shape, per_row, seed)
    loop = rule.loop(keys, values, rates)
    parallel = fast_weights(rule.updates(keys, values, rates), keys)
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
@pytest.mark.parametrize("full_first_step", [True, False])
def test_delta_rule_parallel_equals_loop(shape, per_row, full_first_step):
    assert_parallel_matches_loop(
        DeltaRule(full_first_step=full_first_step), shape, per_row, seed=sum(shape)
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("per_row", [False, True])
def test_hebbian_rule_parallel_equals_loop(shape, per_row):
    assert_parallel_matches_loop(HebbianRule(), shape, per_row, seed=sum(shape))


def test_first_step_quirk_writes_the_first_value_unscaled():
    keys, values, rates = random_inputs((2, 3, 4, 5), per_row=False, seed=0)
    with_quirk = DeltaRule(full_first_step=True).updates(keys, values, rates)
    without = DeltaRule(full_first_step=False).updates(keys, values, rates)
    torch.testing.assert_close(with_quirk[:, :, 0], values[:, :, 0])
    torch.testing.assert_close(without[:, :, 0], rates[:, :, 0] * values[:, :, 0])


def test_delta_rule_overwrites_what_a_key_retrieves():
    """With learning rate 1 and a one-hot key, W k equals the last value written to that key."""
    dim = 4
    keys = torch.eye(dim, dtype=torch.float64)[[1, 1]].reshape(1, 1, 2, dim)
    values = torch.randn(1, 1, 2, dim, dtype=torch.float64)
    rates = torch.ones(1, 1, 2, 1, dtype=torch.float64)
    weights = fast_weights(DeltaRule().updates(keys, values, rates), keys)
    torch.testing.assert_close(weights[0, 0] @ keys[0, 0, 1], values[0, 0, 1])


def test_partial_images_sum_to_the_final_image():
    keys, values, rates = random_inputs((2, 3, 6, 5), per_row=False, seed=3)
    updates = DeltaRule().updates(keys, values, rates)
    partial = rank_one_updates(updates, keys).cumsum(dim=2)
    torch.testing.assert_close(partial[:, :, -1], fast_weights(updates, keys))
