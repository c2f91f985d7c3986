"""The network's blocks: factorised attention = the paper's MLP, un-normalised weights, Dice, numpy twin."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from replayrec_rank_din.features import history_block, time_bucket
from replayrec_rank_din.model import DIN, Dice, LocalActivationUnit
from replayrec_rank_din.stage import DINWeights


def _naive_attention(unit: LocalActivationUnit, hist, cand, mask):
    """[h, c, h − c, h ⊙ c] concatenated explicitly, then the unit's own layers."""
    shape = (cand.shape[0], cand.shape[1], hist.shape[1], hist.shape[2])
    h = hist.unsqueeze(1).expand(shape)
    q = cand.unsqueeze(2).expand(shape)
    x = unit.first(torch.cat([h, q, h - q, h * q], dim=-1))
    x = unit.first_dice(x)
    for lin, dice in zip(unit.linears, unit.dices, strict=True):
        x = dice(lin(x))
    return unit.out(x).squeeze(-1) * mask.unsqueeze(1)


def test_factorised_attention_equals_the_concatenated_mlp() -> None:
    torch.manual_seed(0)
    unit = LocalActivationUnit(12, [20, 8]).eval()
    hist, cand = torch.randn(3, 7, 12), torch.randn(3, 5, 12)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[0, :3] = False
    got = unit(hist, cand, mask)
    assert got.shape == (3, 5, 7)
    torch.testing.assert_close(got, _naive_attention(unit, hist, cand, mask), rtol=1e-5, atol=1e-5)
    assert torch.all(got[0, :, :3] == 0), "padding gets no weight"


def test_attention_weights_are_not_softmax_normalised() -> None:
    torch.manual_seed(1)
    unit = LocalActivationUnit(8, [16]).eval()
    hist, cand = torch.randn(1, 4, 8), torch.randn(1, 3, 8)
    mask = torch.ones(1, 4, dtype=torch.bool)
    w1 = unit(hist, cand, mask)
    twice = torch.cat([hist, hist], dim=1)
    w2 = unit(twice, cand, torch.ones(1, 8, dtype=torch.bool))
    torch.testing.assert_close(w2, torch.cat([w1, w1], dim=-1))
    # sum pooling keeps the intensity: the same behaviours twice give twice the interest
    torch.testing.assert_close(w2 @ twice, 2 * (w1 @ hist), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(w1.sum(-1), torch.ones(1, 3))


def test_dice_uses_only_unmasked_entries_in_training_and_running_stats_in_eval() -> None:
    torch.manual_seed(2)
    dice = Dice(4)
    with torch.no_grad():
        dice.alpha.fill_(0.3)
    x = torch.randn(6, 4)
    mask = torch.tensor([True, True, True, True, False, False])
    polluted = x.clone()
    polluted[4:] = 1e4  # padding with absurd values must not move the statistics
    dice.train()
    out = dice(polluted, mask)
    ref = Dice(4)
    with torch.no_grad():
        ref.alpha.fill_(0.3)
    torch.testing.assert_close(out[:4], ref.train()(x[:4]))
    dice.eval()
    mean, var = dice.running_mean, dice.running_var
    p = torch.sigmoid((x - mean) / torch.sqrt(var + dice.eps))
    torch.testing.assert_close(dice(x), p * x + (1 - p) * 0.3 * x)


def test_numpy_serving_forward_equals_torch() -> None:
    torch.manual_seed(3)
    n_items = 50
    model = DIN(n_items, torch.arange(n_items) % 5, 8, 4, [12], [16, 8], max_history=10, context_dim=3)
    model.train()
    with torch.no_grad():  # move the Dice running statistics away from their initial values
        for _ in range(3):
            model(
                torch.randint(0, n_items + 1, (4, 6)),
                torch.randint(0, 16, (4, 6)),
                torch.randint(0, 6, (4, 6)),
                torch.randint(0, n_items, (4, 9)),
                torch.randint(0, 4, (4, 2)),
            )
    model.eval()
    rng = np.random.default_rng(0)
    items = rng.integers(0, n_items, 12)
    times = np.sort(rng.integers(0, 10**7, 12))
    block = history_block(items, times, np.array([0, 5, 12]), np.array([5, 12, 12]), np.full(3, 10**7), 10)
    cands = rng.integers(0, n_items, (3, 7))
    with torch.no_grad():
        t = {k: torch.from_numpy(v) for k, v in block.items()}
        logits, att = model(
            t["hist_items"], t["hist_time"], t["hist_pos"], torch.from_numpy(cands), t["context"], True
        )
    w = DINWeights({k: v.numpy() for k, v in model.state_dict().items()})
    np_logits, np_att = w.forward(block, cands)
    np.testing.assert_allclose(np_logits, logits.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np_att, att.numpy(), rtol=1e-4, atol=1e-5)
    assert block["hist_items"].shape == (3, 7)
    assert (block["hist_items"][2] == 0).all(), "an empty history is all padding"
    assert block["hist_pos"][1, -1] == 0, "the newest item is position 0"


@pytest.mark.parametrize(
    ("gap", "bucket"), [(0, 0), (3600, 0), (86_400, 1), (2 * 86_400, 2), (5 * 86_400, 3), (10**12, 15)]
)
def test_time_buckets(gap: int, bucket: int) -> None:
    assert int(time_bucket(np.array([gap]))[0]) == bucket
