r"""The pieces every ratio model shares: φ encoding, input standardiser, MLP body.

A ratio model reads raw detector-level columns x with shape (N, F), in the order
of its ``feature_names``. :class:`FeatureEncoder` turns them into standardised
network inputs (optionally φ → (cos φ, sin φ), so that the body sees the
periodicity), with the statistics kept as buffers so that a saved model carries
them. :class:`MLP` is the proposal's body: ``depth`` hidden linear layers of
``width`` nodes, each followed by batch normalisation and ReLU.

Batch normalisation in eval mode is an affine map, so it folds into the linear
layer before it (:func:`fold_batchnorm`); the folded body is a plain MLP that
evaluates faster in fits and gives the same output to float precision.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from torch import Tensor, nn

from dyfit.errors import InputError
from dyfit.physics.prior import ThetaPrior

__all__ = [
    "PhiEncoding",
    "is_azimuth",
    "encoded_names",
    "FeatureEncoder",
    "MLP",
    "fold_batchnorm",
    "RatioModel",
]

PhiEncoding = Literal["raw", "cossin"]


def is_azimuth(name: str) -> bool:
    """True for an azimuthal angle column (``phi``, ``true_phi``), in rad."""
    return name == "phi" or name.endswith("_phi")


def encoded_names(feature_names: tuple[str, ...], phi_encoding: PhiEncoding) -> tuple[str, ...]:
    """The names of the network inputs after φ encoding."""
    if phi_encoding not in ("raw", "cossin"):
        raise InputError(f"unknown phi encoding {phi_encoding!r}; use 'raw' or 'cossin'")
    out: list[str] = []
    for name in feature_names:
        if phi_encoding == "cossin" and is_azimuth(name):
            out += [f"cos({name})", f"sin({name})"]
        else:
            out.append(name)
    return tuple(out)


class FeatureEncoder(nn.Module):
    r"""Raw columns (N, F) → standardised network inputs (N, F'), F' ≥ F.

    Arguments:
        feature_names: The raw columns, in the order of x's last axis.
        phi_encoding: ``"raw"`` feeds φ as it is (the proposal); ``"cossin"`` feeds
            (cos φ, sin φ) in its place, continuous across φ = ±π.
    """

    def __init__(self, feature_names: tuple[str, ...], phi_encoding: PhiEncoding = "raw") -> None:
        super().__init__()
        self.feature_names = tuple(feature_names)
        self.phi_encoding = phi_encoding
        self.names = encoded_names(self.feature_names, phi_encoding)
        self.register_buffer("mean", torch.zeros(len(self.names)))
        self.register_buffer("std", torch.ones(len(self.names)))

    def encode(self, x: Tensor) -> Tensor:
        """φ-encoded but unstandardised inputs, with shape (N, F')."""
        if self.phi_encoding == "raw":
            return x
        columns = []
        for i, name in enumerate(self.feature_names):
            if is_azimuth(name):
                columns += [torch.cos(x[:, i]), torch.sin(x[:, i])]
            else:
                columns.append(x[:, i])
        return torch.stack(columns, dim=-1)

    @torch.no_grad()
    def fit(self, x: Tensor) -> FeatureEncoder:
        """Set the standardisation from a sample x with shape (N, F); returns self."""
        z = self.encode(x.to(self.mean))
        self.mean.copy_(z.mean(0))
        std = z.std(0)
        # A constant column (e.g. a fixed mass in a toy) would divide by zero.
        self.std.copy_(torch.where(std > 0, std, torch.ones_like(std)))
        return self

    def forward(self, x: Tensor) -> Tensor:
        return (self.encode(x) - self.mean) / self.std


class MLP(nn.Sequential):
    r"""``depth`` × [Linear(width) → BatchNorm1d → ReLU] → Linear(out_features).

    Maps (N, in_features) → (N, out_features); ``batch_norm=False`` drops the
    normalisation layers (the folded, evaluation-only form).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        width: int = 64,
        depth: int = 5,
        batch_norm: bool = True,
    ) -> None:
        layers: list[nn.Module] = []
        n_in = in_features
        for _ in range(depth):
            layers.append(nn.Linear(n_in, width))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.ReLU())
            n_in = width
        layers.append(nn.Linear(n_in, out_features))
        super().__init__(*layers)
        self.in_features, self.out_features = in_features, out_features
        self.width, self.depth, self.batch_norm = width, depth, batch_norm


@torch.no_grad()
def fold_batchnorm(mlp: MLP) -> MLP:
    r"""An MLP without batch norm that equals ``mlp`` in eval mode.

    BN(Wx + b) = s ⊙ (Wx + b − m) + β with s = γ / √(v + ε) (running mean m and
    variance v), i.e. a linear layer with weight diag(s)W and bias s(b − m) + β.
    """
    out = MLP(mlp.in_features, mlp.out_features, mlp.width, mlp.depth, batch_norm=False)
    linears = [m for m in mlp if isinstance(m, nn.Linear)]
    norms: list[nn.BatchNorm1d | None] = [m for m in mlp if isinstance(m, nn.BatchNorm1d)]
    norms += [None] * (len(linears) - len(norms))  # the output layer has no norm
    targets = [m for m in out if isinstance(m, nn.Linear)]
    for lin, bn, target in zip(linears, norms, targets, strict=True):
        weight, bias = lin.weight.clone(), lin.bias.clone()
        if bn is not None:
            s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            weight = s[:, None] * weight
            bias = s * (bias - bn.running_mean) + bn.bias
        target.weight.copy_(weight)
        target.bias.copy_(bias)
    return out.to(linears[0].weight)


class RatioModel(nn.Module):
    r"""Base of the ratio models: features, prior, encoder and a rebuildable architecture.

    Subclasses set ``kind``, build ``self.body`` (an :class:`MLP`) and implement
    ``log_ratio(x (N, F), theta (3,) or (N, 3)) -> (N,)``.
    """

    kind: str = ""

    def __init__(
        self,
        feature_names: tuple[str, ...],
        prior: ThetaPrior | dict,
        width: int,
        depth: int,
        phi_encoding: PhiEncoding,
        batch_norm: bool,
    ) -> None:
        super().__init__()
        if not feature_names:
            raise InputError("a ratio model needs at least one feature column")
        self.feature_names = tuple(feature_names)
        self.prior = prior if isinstance(prior, ThetaPrior) else ThetaPrior.model_validate(prior)
        self.width, self.depth, self.batch_norm = width, depth, batch_norm
        self.phi_encoding = phi_encoding
        self.encoder = FeatureEncoder(self.feature_names, phi_encoding)

    def architecture(self) -> dict[str, Any]:
        """The JSON-serialisable constructor arguments that rebuild this model."""
        return {
            "feature_names": list(self.feature_names),
            "prior": self.prior.model_dump(mode="json"),
            "width": self.width,
            "depth": self.depth,
            "phi_encoding": self.phi_encoding,
            "batch_norm": self.batch_norm,
        }

    def folded(self) -> RatioModel:
        """An equivalent model, in eval mode, with batch norm folded into the linear layers."""
        out = copy.deepcopy(self)
        out.body = fold_batchnorm(self.body)
        out.batch_norm = False
        return out.eval()

    def as_input(self, x: Tensor) -> Tensor:
        """x as float32 on this model's device, checked to have shape (N, F)."""
        if x.dim() != 2 or x.shape[1] != len(self.feature_names):
            raise InputError(
                f"model expects x with shape (N, {len(self.feature_names)}) for columns "
                f"{', '.join(self.feature_names)}; got {tuple(x.shape)}"
            )
        return x.to(self.encoder.mean)
