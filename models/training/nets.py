"""The PyTorch model: a wide & deep network for tabular loans, and its fused ensemble for scoring.

Each member has a *wide* part (a logistic regression on the standardised numbers plus one learnt
weight per category) and a *deep* part (an MLP over the numbers and small embeddings of the categories:
sub_grade, purpose, home ownership, state, verification, employment length). On this data most of
the signal is close to linear, so the wide part carries it and the deep part adds interactions.

Training (`fit_member`): AdamW, early stopping on validation AUC, class imbalance handled by weighting
defaults by n_good / n_default in the loss; the weighting inflates the odds by that factor, so the
ensemble subtracts log(weight) from its logit to give calibrated probabilities. Older loans can be
down-weighted (`recency_years`: weight exp(-age / tau)) because lending standards drift.

Scoring (`Ensemble`): the members' weights are stacked so K members cost one batched matmul per layer,
not K forward passes; that is what keeps a 10k-row batch and a single-row request cheap.
"""

from __future__ import annotations

import copy
import logging
import math
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.features.spec import Features
from models.metrics import auc
from models.scoring.network import INPUTS, OUTPUTS

log = logging.getLogger(__name__)
CLAMP = 6.0  # standardised inputs beyond 6 sigma carry no more information, only leverage


@dataclass
class NetConfig:
    """Hyperparameters of one member (searched by Optuna) and of the ensemble."""

    hidden: int = 16
    dropout: float = 0.4
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    max_epochs: int = 80
    patience: int = 10
    recency_years: float | None = 2.0
    rank_weight: float = 0.0
    members: int = 5

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def embedding_dim(cardinality: int) -> int:
    """Small embeddings: 2 for a handful of categories, up to 6 for the states."""
    return int(min(6, max(2, round(cardinality**0.4))))


class WideDeep(nn.Module):
    """One member. Takes raw feature values; standardisation is part of the module (buffers)."""

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, n_numeric: int, cardinalities: list[int], hidden: int, dropout: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_numeric))
        self.register_buffer("scale", torch.ones(n_numeric))
        dims = [embedding_dim(c) for c in cardinalities]
        self.tables = [nn.Embedding(c, d) for c, d in zip(cardinalities, dims, strict=True)]
        self.wide_tables = [nn.Embedding(c, 1) for c in cardinalities]
        for table in self.wide_tables:  # start as the plain logistic regression on the numbers
            nn.init.zeros_(table.weight)
        self.embeddings = nn.ModuleList(self.tables)  # registered, so they train and save
        self.wide_categories = nn.ModuleList(self.wide_tables)
        self.wide = nn.Linear(n_numeric, 1)
        self.first = nn.Linear(n_numeric + sum(dims), hidden)
        self.second = nn.Linear(hidden, max(hidden // 2, 4))
        self.last = nn.Linear(max(hidden // 2, 4), 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, numeric: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        x = ((numeric - self.mean) / self.scale).clamp(-CLAMP, CLAMP)
        wide = self.wide(x).squeeze(1)
        for i, table in enumerate(self.wide_tables):
            wide = wide + table(codes[:, i]).squeeze(1)
        h = torch.cat([x, *(table(codes[:, i]) for i, table in enumerate(self.tables))], dim=1)
        h = self.dropout(torch.relu(self.first(h)))
        h = self.dropout(torch.relu(self.second(h)))
        return wide + self.last(h).squeeze(1)


@dataclass
class TrainData:
    """Tensors of one part (train or validation) and the per-row training weights."""

    numeric: torch.Tensor
    codes: torch.Tensor
    y: np.ndarray
    weight: torch.Tensor

    @classmethod
    def of(cls, features: Features, y: np.ndarray, weight: np.ndarray, device: torch.device) -> TrainData:
        return cls(
            torch.as_tensor(features.numeric, device=device),
            torch.as_tensor(features.codes, device=device),
            y,
            torch.as_tensor(weight, dtype=torch.float32, device=device),
        )


def class_weight(y: np.ndarray) -> float:
    """n_good / n_default: the weight that balances the classes in the loss."""
    positives = max(float(y.sum()), 1.0)
    return max(float(len(y) - y.sum()), 1.0) / positives


def sample_weights(y: np.ndarray, age_years: np.ndarray, recency_years: float | None) -> np.ndarray:
    """Class balance times recency (exp(-age / tau)), scaled to mean 1."""
    weight = np.where(y == 1, class_weight(y), 1.0)
    if recency_years:
        weight = weight * np.exp(-np.maximum(age_years, 0.0) / recency_years)
    return (weight / weight.mean()).astype(np.float32)


def standardisation(numeric: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and scale per column; 0/1 flags stay as they are (a flag set on 0.1 % of the rows would
    otherwise become a 30-sigma input that swamps the rest)."""
    mean, scale = numeric.mean(0), numeric.std(0).clamp_min(1e-6)
    binary = ((numeric == 0) | (numeric == 1)).all(0)
    return torch.where(binary, 0.0, mean), torch.where(binary, 1.0, scale)


def _predict(net: nn.Module, numeric: torch.Tensor, codes: torch.Tensor, batch: int = 65_536) -> np.ndarray:
    net.eval()
    with torch.inference_mode():
        parts = [net(numeric[i : i + batch], codes[i : i + batch]) for i in range(0, len(numeric), batch)]
    return torch.cat(parts).float().cpu().numpy()


def fit_member(
    train: TrainData,
    valid: TrainData,
    cfg: NetConfig,
    cardinalities: list[int],
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> tuple[WideDeep, float, int]:
    """Train one member; return it at its best validation AUC, that AUC and the epoch it came at."""
    device = train.numeric.device
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = WideDeep(train.numeric.shape[1], cardinalities, cfg.hidden, cfg.dropout).to(device)
    with torch.no_grad():
        mean, scale = standardisation(train.numeric)
        net.mean.copy_(mean)
        net.scale.copy_(scale)
    optimiser = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    labels = torch.as_tensor(train.y, dtype=torch.float32, device=device)
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    best_auc, best_epoch, best_state = -1.0, 0, copy.deepcopy(net.state_dict())
    n = len(labels)
    for epoch in range(cfg.max_epochs):
        started = time.monotonic()
        net.train()
        order = torch.as_tensor(rng.permutation(n), device=device)
        for i in range(0, n, cfg.batch_size):
            rows = order[i : i + cfg.batch_size]
            optimiser.zero_grad(set_to_none=True)
            logits = net(train.numeric[rows], train.codes[rows])
            loss = (loss_fn(logits, labels[rows]) * train.weight[rows]).mean()
            if cfg.rank_weight:
                loss = loss + cfg.rank_weight * pairwise_loss(logits, labels[rows])
            loss.backward()
            optimiser.step()
        score = auc(valid.y, _predict(net, valid.numeric, valid.codes))
        if score > best_auc:
            best_auc, best_epoch, best_state = score, epoch, copy.deepcopy(net.state_dict())
        if progress:
            progress(
                f"epoch {epoch + 1:3d}  valid AUC {score:.4f}  best {best_auc:.4f}  "
                f"{time.monotonic() - started:.1f} s"
            )
        if epoch - best_epoch >= cfg.patience:
            break
    net.load_state_dict(best_state)
    return net.eval(), best_auc, best_epoch + 1


def pairwise_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean softplus(-(s_default - s_repaid)) over every (default, repaid) pair in the batch: a smooth AUC."""
    bad, good = logits[labels == 1], logits[labels == 0]
    if len(bad) == 0 or len(good) == 0:
        return logits.sum() * 0.0
    return nn.functional.softplus(good.unsqueeze(0) - bad.unsqueeze(1)).mean()


class Ensemble(nn.Module):
    """K members fused for scoring; `forward` gives the mean logit minus the class-weight offset.

    An embedding followed by a linear layer is linear, so each category's embedding is folded into
    the first layer: one table row per category value holds its contribution to every member's first
    hidden layer (and its wide weight). Scoring is then one matmul for the numbers, one embedding-bag
    lookup for all categories of all members, and one batched matmul per remaining layer.
    """

    mean: torch.Tensor
    scale: torch.Tensor
    offset: torch.Tensor
    numeric_w: torch.Tensor
    table: torch.Tensor
    bias: torch.Tensor
    starts: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor
    w3: torch.Tensor
    b3: torch.Tensor
    members: int
    hidden: int

    def __init__(self, members: list[WideDeep], offset: float) -> None:
        super().__init__()
        first = members[0]
        n_numeric, hidden = first.wide.in_features, first.first.out_features
        numeric_w, tables, bias = [], [], []
        for m in members:
            w1 = _cpu(m.first.weight)  # [hidden, n_numeric + sum(dims)]
            numeric_w.append(torch.cat([w1[:, :n_numeric].T, _cpu(m.wide.weight).T], dim=1))
            tables.append(_folded_tables(m, w1[:, n_numeric:]))
            bias.append(torch.cat([_cpu(m.first.bias), _cpu(m.wide.bias)]))
        self.register_buffer("mean", _cpu(first.mean))
        self.register_buffer("scale", _cpu(first.scale))
        self.register_buffer("offset", torch.tensor(float(offset)))
        self.register_buffer("numeric_w", torch.cat(numeric_w, dim=1))  # [f, K * (hidden + 1)]
        self.register_buffer("table", torch.cat(tables, dim=1))  # [sum(cardinalities), K * (hidden + 1)]
        self.register_buffer("bias", torch.cat(bias))  # [K * (hidden + 1)]
        sizes = [t.num_embeddings for t in first.tables]
        self.register_buffer("starts", torch.tensor([0, *np.cumsum(sizes)[:-1].tolist()], dtype=torch.int64))
        self.register_buffer("w2", torch.stack([_cpu(m.second.weight).T for m in members]))  # [K, h, h2]
        self.register_buffer("b2", torch.stack([_cpu(m.second.bias) for m in members]).unsqueeze(1))
        self.register_buffer("w3", torch.stack([_cpu(m.last.weight).T for m in members]))  # [K, h2, 1]
        self.register_buffer("b3", torch.stack([_cpu(m.last.bias) for m in members]).unsqueeze(1))
        self.members, self.hidden = len(members), hidden

    def forward(self, numeric: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return self.head(self.first_layer(self.standardised(numeric), codes))

    def standardised(self, numeric: torch.Tensor) -> torch.Tensor:
        return ((numeric - self.mean) / self.scale).clamp(-CLAMP, CLAMP)

    def first_layer(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Every member's first hidden layer and wide logit before the ReLU: [n, K * (hidden + 1)]."""
        bag = nn.functional.embedding_bag(codes + self.starts, self.table, mode="sum")
        return torch.addmm(self.bias, x, self.numeric_w).add_(bag)

    def head(self, z: torch.Tensor) -> torch.Tensor:
        """The logit of `first_layer` rows: [m, K * (hidden + 1)] -> [m]."""
        z = z.reshape(-1, self.members, self.hidden + 1).transpose(0, 1)  # [K, m, hidden + 1]
        h = torch.relu(z[:, :, : self.hidden])
        h = torch.relu(torch.baddbmm(self.b2, h, self.w2))
        deep = torch.baddbmm(self.b3, h, self.w3).squeeze(2)  # [K, m]
        return (deep + z[:, :, self.hidden]).mean(dim=0) - self.offset

    def category_reference(self) -> torch.Tensor:
        """Each category's reference row of the folded table: the mean of its known values' rows
        (row 0 of each is missing or unseen): [C, K * (hidden + 1)]."""
        ends = [*self.starts.tolist()[1:], self.table.shape[0]]
        spans = zip(self.starts.tolist(), ends, strict=True)
        return torch.stack([self.table[a + 1 if b - a > 1 else a : b].mean(0) for a, b in spans])

    def state(self) -> dict[str, np.ndarray]:
        """Every buffer as a numpy array, for `np.savez` (no pickle in the logged model)."""
        return {name: buf.numpy() for name, buf in self.named_buffers()}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> Ensemble:
        self = cls.__new__(cls)
        nn.Module.__init__(self)
        for name, value in state.items():
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(value)))
        self.members = int(self.w2.shape[0])
        self.hidden = int(self.w2.shape[1])
        return self

    def probability(self, features: Features) -> np.ndarray:
        """Default probability per row (float64)."""
        with torch.inference_mode():
            logit = self(torch.from_numpy(features.numeric), torch.from_numpy(features.codes))
        return 1.0 / (1.0 + np.exp(-logit.numpy().astype(np.float64)))


class Explaining(nn.Module):
    """The ensemble as it is exported (`to_onnx`): probability and each factor group's removal effect,
    in float64, so every runtime that runs the export agrees to rounding noise whatever its batch size.

    A group's effect is the logit minus the logit with the group's features at the reference (numbers
    at the training mean, i.e. 0 once standardised; each category at the mean of its known values'
    rows of the folded table). The first layer is linear in the inputs, so removing a group subtracts
    its part of that layer (0/1 masks: `models.scoring.explain` defines the groups) and reruns only the head,
    for the row and its G removals in ONE pass. The head is laid out for few operators (a JVM task
    scores one row per call, where each operator's fixed cost counts): every member's hidden units
    side by side, the second layers as one block-diagonal matrix, and the members' mean folded into
    the last one."""

    mean: torch.Tensor
    scale: torch.Tensor
    starts: torch.Tensor
    table: torch.Tensor
    numeric_w: torch.Tensor
    bias: torch.Tensor
    reference: torch.Tensor
    numeric_mask: torch.Tensor
    category_mask: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor
    last: torch.Tensor
    constant: torch.Tensor

    def __init__(self, ensemble: Ensemble, groups: list[tuple[list[int], list[int]]]) -> None:
        super().__init__()
        e = copy.deepcopy(ensemble).double()
        k, h = e.members, e.hidden
        h2 = e.w2.shape[2]
        cols = [m * (h + 1) + j for m in range(k) for j in range(h)] + [m * (h + 1) + h for m in range(k)]
        numbers, categories = len(e.mean), len(e.starts)
        numeric_mask = torch.zeros(len(groups), numbers, dtype=torch.float64)
        category_mask = torch.zeros(len(groups), categories, dtype=torch.float64)
        for g, (nums, cats) in enumerate(groups):
            numeric_mask[g, nums], category_mask[g, cats] = 1.0, 1.0
        w2 = torch.block_diag(*e.w2)  # [K h, K h2]
        last = torch.cat([e.w3.reshape(k * h2, 1), torch.ones(k, 1, dtype=torch.float64)]) / k
        buffers = {
            "mean": e.mean, "scale": e.scale, "starts": e.starts, "table": e.table[:, cols],
            "numeric_w": e.numeric_w[:, cols], "bias": e.bias[cols],
            "reference": e.category_reference()[:, cols], "numeric_mask": numeric_mask,  # [G, F]
            "category_mask": category_mask, "w2": w2, "b2": e.b2.reshape(-1), "last": last,
            "constant": e.b3.mean() - e.offset,
        }  # fmt: skip
        for name, value in buffers.items():
            self.register_buffer(name, value.detach().clone())
        self.deep = k * h

    def forward(self, numeric: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = ((numeric.double() - self.mean) / self.scale).clamp(-CLAMP, CLAMP)  # [n, F]
        rows = self.table[codes + self.starts]  # [n, C, D]: each category's first-layer part
        z = torch.addmm(self.bias, x, self.numeric_w) + rows.sum(1)  # [n, D]
        delta = (x.unsqueeze(1) * self.numeric_mask) @ self.numeric_w  # [n, G, D]
        delta = delta + torch.matmul(self.category_mask, rows - self.reference)
        n, g = delta.shape[0], delta.shape[1]
        every = torch.cat([z.unsqueeze(1), z.unsqueeze(1) - delta], dim=1).reshape(n * (g + 1), -1)
        hidden = torch.relu(torch.relu(every[:, : self.deep]) @ self.w2 + self.b2)
        logit = (torch.cat([hidden, every[:, self.deep :]], dim=1) @ self.last).reshape(
            n, g + 1
        ) + self.constant
        return torch.sigmoid(logit[:, 0]), logit[:, :1] - logit[:, 1:]


def to_onnx(ensemble: Ensemble, groups: list[tuple[list[int], list[int]]]) -> bytes:
    """`Explaining(ensemble, groups)` as an ONNX model (opset 17, batch size free): inputs `numeric`
    float32 [n, F] and `codes` int64 [n, C], outputs `probability` float64 [n] and `effects` float64
    [n, G]. `models.scoring.network` runs it in Python, sparky/jvm/ModelScorer.java in Spark's JVM."""
    module = Explaining(ensemble, groups).eval()
    example = (torch.zeros(2, len(ensemble.mean)), torch.zeros(2, len(ensemble.starts), dtype=torch.int64))
    batch = {name: {0: "n"} for name in (*INPUTS, *OUTPUTS)}
    # the TorchScript exporter: deprecated, not gone, and it needs no onnxscript
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            module, example, path, input_names=list(INPUTS), output_names=list(OUTPUTS),
            dynamic_axes=batch, opset_version=17, dynamo=False,
        )  # fmt: skip
        return path.read_bytes()


def _cpu(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().float().cpu()


def _folded_tables(member: WideDeep, w1_embedded: torch.Tensor) -> torch.Tensor:
    """Per category value: its embedding times its slice of the first layer, then its wide weight."""
    rows, start = [], 0
    for table, wide in zip(member.tables, member.wide_tables, strict=True):
        dim = table.embedding_dim
        part = _cpu(table.weight) @ w1_embedded[:, start : start + dim].T  # [card, hidden]
        rows.append(torch.cat([part, _cpu(wide.weight)], dim=1))
        start += dim
    return torch.cat(rows, dim=0)


def offset_for(y: np.ndarray) -> float:
    """The logit shift the class weighting adds: log(n_good / n_default)."""
    return math.log(class_weight(y))
