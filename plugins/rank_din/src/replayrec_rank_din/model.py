"""Deep Interest Network (Zhou et al., KDD 2018) as plain ``nn.Module`` blocks — no Lightning here.

Shapes: ``B`` requests, ``C`` candidates per request, ``L`` history items, ``D`` item representation width
(item id embedding ⊕ item group embedding), ``H`` hidden widths.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from replayrec_rank_din.config import RECENT_EVENTS
from replayrec_rank_din.features import N_LENGTH_BUCKETS, N_TIME_BUCKETS

__all__ = ["DIN", "Dice", "ItemEncoder", "LocalActivationUnit", "ScoringMLP"]


class Dice(nn.Module):
    """Data-adaptive activation (DIN §4.3): ``p(s)·s + (1 − p(s))·α·s`` with
    ``p(s) = sigmoid((s − E[s]) / sqrt(Var[s] + ε))``.

    Statistics come from the batch while training (only the entries where ``mask`` is true, so padding does
    not bias them) and from running averages at inference. ``x``: (..., H); ``mask``: x.shape[:-1] or None.
    """

    running_mean: Tensor
    running_var: Tensor

    def __init__(self, features: int, eps: float = 1e-6, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.alpha = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if self.training:
            dims = tuple(range(x.dim() - 1))
            if mask is None:
                mean = x.mean(dim=dims)
                var = x.var(dim=dims, unbiased=False)
            else:
                m = mask.unsqueeze(-1).to(x.dtype)
                n = m.sum().clamp_min(1.0)
                mean = (x * m).sum(dim=dims) / n
                var = (((x - mean) ** 2) * m).sum(dim=dims) / n
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach(), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        p = torch.sigmoid((x - mean) / torch.sqrt(var + self.eps))
        return p * x + (1.0 - p) * self.alpha * x


class ItemEncoder(nn.Module):
    """Item id embedding ⊕ item group embedding. ``items``: (...) dense ids + 1 (0 = padding) → (..., D)."""

    item_group: Tensor

    def __init__(self, n_items: int, item_group: Tensor, item_dim: int, group_dim: int) -> None:
        super().__init__()
        n_groups = int(item_group.max()) + 1 if item_group.numel() else 1
        self.item = nn.Embedding(n_items + 1, item_dim, padding_idx=0)
        self.group = nn.Embedding(n_groups + 1, group_dim, padding_idx=0)
        # item_group[i + 1] = group of dense item i, plus 1; item_group[0] = 0 (padding)
        self.register_buffer(
            "item_group", torch.cat([torch.zeros(1, dtype=torch.long), item_group.long() + 1])
        )
        for emb in (self.item, self.group):
            nn.init.normal_(emb.weight, std=0.05)
            with torch.no_grad():
                emb.weight[0].zero_()

    @property
    def dim(self) -> int:
        return self.item.embedding_dim + self.group.embedding_dim

    def forward(self, items: Tensor) -> Tensor:
        return torch.cat([self.item(items), self.group(self.item_group[items])], dim=-1)


def _mlp_tail(widths: Sequence[int]) -> tuple[nn.ModuleList, nn.ModuleList]:
    linears = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
    dices = nn.ModuleList(Dice(w) for w in widths[1:])
    return linears, dices


class LocalActivationUnit(nn.Module):
    """Attention weight of every history item for every candidate (DIN §4.3, Fig. 2).

    ``a(h, c) = MLP([h, c, h − c, h ⊙ c])`` with Dice between layers and one linear output; the weights are
    **not** normalised by softmax, so the pooled interest keeps the intensity of the user's interest.
    The first layer is evaluated factorised — ``W·[h, c, h−c, h⊙c] = (W_h+W_d)·h + (W_c−W_d)·c + W_p·(h⊙c)``
    — identical in value, but only the ``h ⊙ c`` term is computed per (candidate, history) pair.

    hist (B, L, D), cand (B, C, D), mask (B, L) → weights (B, C, L), zero at padding.
    """

    def __init__(self, dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("the activation unit needs at least one hidden layer")
        self.dim = dim
        self.first = nn.Linear(4 * dim, hidden[0])
        self.first_dice = Dice(hidden[0])
        self.linears, self.dices = _mlp_tail(list(hidden))
        self.out = nn.Linear(hidden[-1], 1)

    def forward(self, hist: Tensor, cand: Tensor, mask: Tensor) -> Tensor:
        d = self.dim
        w = self.first.weight  # (H, 4D)
        w_h, w_c, w_d, w_p = w[:, :d], w[:, d : 2 * d], w[:, 2 * d : 3 * d], w[:, 3 * d :]
        h_term = hist @ (w_h + w_d).T  # (B, L, H)
        c_term = cand @ (w_c - w_d).T + self.first.bias  # (B, C, H)
        pair = (cand.unsqueeze(2) * hist.unsqueeze(1)) @ w_p.T  # (B, C, L, H)
        x = pair + h_term.unsqueeze(1) + c_term.unsqueeze(2)
        pair_mask = mask.unsqueeze(1).expand(-1, cand.shape[1], -1)  # (B, C, L)
        x = self.first_dice(x, pair_mask)
        for lin, dice in zip(self.linears, self.dices, strict=True):
            x = dice(lin(x), pair_mask)
        weights: Tensor = self.out(x).squeeze(-1) * pair_mask.to(x.dtype)
        return weights


class ScoringMLP(nn.Module):
    """[interest, candidate, interest ⊙ candidate, context] (B, C, F) → logit (B, C); Dice between layers."""

    def __init__(self, in_features: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.linears, self.dices = _mlp_tail([in_features, *hidden])
        self.out = nn.Linear(hidden[-1] if hidden else in_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        for lin, dice in zip(self.linears, self.dices, strict=True):
            x = dice(lin(x))
        logits: Tensor = self.out(x).squeeze(-1)
        return logits


class DIN(nn.Module):
    """The full network.

    Inputs (all int64):
        hist_items (B, L): dense item id + 1 of each history item, 0 = padding; most recent last.
        hist_time (B, L): time-gap bucket of each history item (request time − event time).
        hist_pos (B, L): position counted from the most recent item (0 = newest).
        cand_items (B, C): dense item ids (no padding) of the candidates.
        context (B, 2): [history-length bucket, bucket of the gap since the newest event].
    Output: logits (B, C); ``forward(..., return_attention=True)`` also returns the weights (B, C, L).
    """

    def __init__(
        self,
        n_items: int,
        item_group: Tensor,
        item_dim: int = 64,
        group_dim: int = 8,
        attention_hidden: Sequence[int] = (36,),
        mlp_hidden: Sequence[int] = (200, 80),
        max_history: int = RECENT_EVENTS,
        context_dim: int = 8,
    ) -> None:
        super().__init__()
        self.encoder = ItemEncoder(n_items, item_group, item_dim, group_dim)
        d = self.encoder.dim
        self.time = nn.Embedding(N_TIME_BUCKETS, d)
        self.position = nn.Embedding(max_history, d)
        self.ctx_length = nn.Embedding(N_LENGTH_BUCKETS, context_dim)
        self.ctx_gap = nn.Embedding(N_TIME_BUCKETS, context_dim)
        for emb in (self.time, self.position, self.ctx_length, self.ctx_gap):
            nn.init.normal_(emb.weight, std=0.01)
        self.attention = LocalActivationUnit(d, attention_hidden)
        self.mlp = ScoringMLP(3 * d + 2 * context_dim, mlp_hidden)

    def forward(
        self,
        hist_items: Tensor,
        hist_time: Tensor,
        hist_pos: Tensor,
        cand_items: Tensor,
        context: Tensor,
        return_attention: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        mask = hist_items > 0
        hist = self.encoder(hist_items) + (self.time(hist_time) + self.position(hist_pos)) * mask.unsqueeze(
            -1
        )
        cand = self.encoder(cand_items + 1)
        weights = self.attention(hist, cand, mask)  # (B, C, L)
        interest = weights @ hist  # (B, C, D)
        ctx = torch.cat([self.ctx_length(context[:, 0]), self.ctx_gap(context[:, 1])], dim=-1)
        ctx = ctx.unsqueeze(1).expand(-1, cand.shape[1], -1)
        logits = self.mlp(torch.cat([interest, cand, interest * cand, ctx], dim=-1))
        return (logits, weights) if return_attention else logits
