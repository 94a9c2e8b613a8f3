r"""A conditional variational autoencoder p(x|θ) = ∫ p(x|z, θ) p(z) dz (arXiv:1312.6114).

The encoder q(z|x, θ) = N(m(x, θ), diag s²(x, θ)) and the decoder p(x|z, θ) are small
SiLU MLPs (smooth in θ, so the fit's Hessian in θ is the curvature of the loss and
not of piecewise-linear ReLU kinks). p(z) = N(0, I).

Representation. Each detector column x_f is mapped to a variable a Gaussian decoder can
model: ``log`` for positive columns (mass, pT: no mass below 0), ``atanh`` for the bounded
cosθ, ``angle`` for φ (periodic: von Mises, the circle's Gaussian,
p(φ) = exp(κ cos(φ − m)) / 2π I0(κ); the encoder sees (cos φ, sin φ)), ``linear``
otherwise; then standardised with training-sample statistics kept as buffers. The
Jacobian of this map does not depend on θ, so likelihood ratios and fits of θ are the
same in either space; :meth:`CVAE.log_bound` is a density of the transformed variables.

Decoder variance. Learned per dimension (a function of z and θ), floored at e^-9 in
standardised units: with a fixed variance the reconstruction term is a mean-squared
error at an arbitrary temperature, the ELBO no longer bounds log p(x|θ) on the right
scale and the fit's curvature would be off by that factor.

Bounds on log p(x|θ): the ELBO (K = 1, analytic KL) and the importance-weighted bound
log (1/K) Σ_k p(x, z_k|θ)/q(z_k|x, θ) (IWAE, arXiv:1509.00519), tighter as K grows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor, nn

from dyfit.data.columns import THETA_COLUMNS
from dyfit.data.events import EventTable
from dyfit.errors import InputError
from dyfit.networks.mlp import is_azimuth
from dyfit.physics.angular import THETA_NAMES
from dyfit.physics.prior import ThetaPrior

__all__ = ["Transform", "default_transform", "condition_bounds", "CVAE", "smooth_mlp"]

Transform = Literal["linear", "log", "atanh", "angle"]
LOG2PI = math.log(2 * math.pi)
MIN_LOGVAR = -9.0


def default_transform(name: str) -> Transform:
    """The representation of a column by its name (module docstring)."""
    if is_azimuth(name):
        return "angle"
    if name.endswith("costh"):
        return "atanh"
    if name in ("mass", "pT") or name.endswith(("_mass", "_pT")):
        return "log"
    return "linear"


def smooth_mlp(n_in: int, n_out: int, width: int, depth: int) -> nn.Sequential:
    """``depth`` × [Linear(width) → SiLU] → Linear(n_out): (N, n_in) → (N, n_out)."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else width, width), nn.SiLU()]
    layers.append(nn.Linear(width if depth else n_in, n_out))
    return nn.Sequential(*layers)


def condition_bounds(
    bounds: ArrayLike | None, condition_names: Sequence[str], model: str
) -> NDArray[np.float64]:
    """The training box (D, 2) of conditions θ (D,), checked; None → the default θ prior's.

    Raises:
        InputError: Not one (low, high) with low < high per condition (``model`` names
            the network in the message).
    """
    b = np.asarray(ThetaPrior().bounds if bounds is None else bounds, dtype=np.float64)
    if b.shape != (len(condition_names), 2) or not np.all(b[:, 0] < b[:, 1]):
        raise InputError(f"{model} bounds must be (low, high) per condition, got {b.tolist()}")
    return b


def _softfloor(raw: Tensor, floor: float) -> Tensor:
    return floor + nn.functional.softplus(raw - floor)


class CVAE(nn.Module):
    r"""Conditional VAE of detector-level events x (N, F) given conditions θ (N, D).

    Arguments:
        feature_names: The raw columns of x.
        condition_names: The conditions (default λ, μ, ν); read from the events as
            ``theta_lambda`` etc. for θ, else by their own name.
        bounds: The training box of the conditions, (D, 2); the fit stays inside it.
        transforms: One :data:`Transform` per feature (default by name).
        latent_dim, width, depth: The latent size L and the MLPs' layer sizes.
    """

    kind = "cvae"

    def __init__(
        self,
        feature_names: Sequence[str],
        condition_names: Sequence[str] = THETA_NAMES,
        bounds: ArrayLike | None = None,
        transforms: Sequence[Transform] | None = None,
        latent_dim: int = 4,
        width: int = 64,
        depth: int = 3,
    ) -> None:
        super().__init__()
        self.feature_names = tuple(feature_names)
        self.condition_names = tuple(condition_names)
        self.bounds = condition_bounds(bounds, self.condition_names, "cVAE")
        self.transforms = tuple(transforms or map(default_transform, self.feature_names))
        if len(self.transforms) != len(self.feature_names) or not set(self.transforms) <= {
            "linear",
            "log",
            "atanh",
            "angle",
        }:
            raise InputError(
                f"one transform of linear/log/atanh/angle per feature, got {transforms}"
            )
        self.latent_dim, self.width, self.depth = latent_dim, width, depth
        is_angle = torch.tensor([t == "angle" for t in self.transforms])
        self.register_buffer("is_angle", is_angle, persistent=False)
        n_f, n_a, n_c = len(self.feature_names), int(is_angle.sum()), len(self.condition_names)
        self.register_buffer("mean", torch.zeros(n_f))
        self.register_buffer("std", torch.ones(n_f))
        self.encoder_net = smooth_mlp(n_f + n_a + n_c, 2 * latent_dim, width, depth)
        # per linear dimension (mean, log-variance); per angle (cos m, sin m, κ)
        self.decoder_net = smooth_mlp(latent_dim + n_c, 2 * n_f + n_a, width, depth)

    # --- the checkpoint's view -------------------------------------------------------------
    def architecture(self) -> dict[str, Any]:
        """The JSON-serialisable constructor arguments that rebuild this model."""
        return {
            "feature_names": list(self.feature_names),
            "condition_names": list(self.condition_names),
            "bounds": self.bounds.tolist(),
            "transforms": list(self.transforms),
            "latent_dim": self.latent_dim,
            "width": self.width,
            "depth": self.depth,
        }

    @property
    def names(self) -> list[str]:
        """The decoder's variables, e.g. ``log(mass)``, ``phi``."""
        return [n if t in ("linear", "angle") else f"{t}({n})" for n, t in self._pairs()]

    @property
    def scaler(self) -> CVAE:
        """What the checkpoint records as the input scaler (``names``, ``mean``, ``std``)."""
        return self

    @property
    def prior(self) -> ThetaPrior | None:
        """The training box as a :class:`ThetaPrior` when the conditions are (λ, μ, ν)."""
        if self.condition_names != THETA_NAMES:
            return None
        return ThetaPrior(
            lambda_=tuple(self.bounds[0]), mu=tuple(self.bounds[1]), nu=tuple(self.bounds[2])
        )

    @property
    def condition_columns(self) -> tuple[str, ...]:
        """The event columns that hold the conditions of simulated events."""
        if self.condition_names == THETA_NAMES:
            return THETA_COLUMNS
        return self.condition_names

    def _pairs(self):
        return zip(self.feature_names, self.transforms, strict=True)

    # --- representation --------------------------------------------------------------------
    def represent(self, x: Tensor) -> Tensor:
        """Raw x (N, F) → transformed, standardised y (N, F); angles stay in rad."""
        cols = []
        for i, t in enumerate(self.transforms):
            v = x[:, i]
            if t == "log":
                v = torch.log(v)
            elif t == "atanh":
                v = torch.atanh(v.clamp(-1 + 1e-7, 1 - 1e-7))
            cols.append(v)
        y = torch.stack(cols, -1)
        return torch.where(self.is_angle, y, (y - self.mean) / self.std)

    def unrepresent(self, y: NDArray) -> NDArray:
        """The inverse of :meth:`represent` in NumPy, (N, F) → (N, F)."""
        y = y * self.std.cpu().numpy() + self.mean.cpu().numpy()
        out = np.empty_like(y)
        for i, t in enumerate(self.transforms):
            out[:, i] = {"log": np.exp, "atanh": np.tanh}.get(t, lambda v: v)(y[:, i])
        return out

    @torch.no_grad()
    def fit_scaler(self, x: Tensor) -> CVAE:
        """Set the standardisation from raw training events x (N, F); returns self."""
        self.mean.zero_()
        self.std.fill_(1.0)
        y = self.represent(x.to(self.mean))
        std = y.std(0)
        self.mean.copy_(torch.where(self.is_angle, 0.0, y.mean(0)))
        self.std.copy_(torch.where(self.is_angle | (std <= 0), 1.0, std))
        return self

    def condition(self, c: Tensor, n: int) -> Tensor:
        """Conditions (D,) or (N, D) → (N, D) mapped onto [−1, 1] by the bounds."""
        b = torch.as_tensor(self.bounds, dtype=self.mean.dtype, device=self.mean.device)
        c = c.to(self.mean).expand(n, -1) if c.dim() == 1 else c.to(self.mean)
        return (2 * c - b[:, 0] - b[:, 1]) / (b[:, 1] - b[:, 0])

    # --- the two networks ----------------------------------------------------------------
    def encode(self, y: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x, θ): mean and log-variance, each (N, L), from y (N, F) and scaled c (N, D)."""
        a = y[:, self.is_angle]
        h = torch.cat([y[:, ~self.is_angle], torch.cos(a), torch.sin(a), c], -1)
        return self.encoder_net(h).chunk(2, -1)

    def decode(self, z: Tensor, c: Tensor) -> dict[str, Tensor]:
        """p(y|z, θ) for z (..., L), c (..., D): Gaussian mean/log-variance per linear dim,
        von Mises mean angle and concentration per angle, each (..., F) (unused slots 0)."""
        out = self.decoder_net(torch.cat([z, c], -1))
        f = len(self.feature_names)
        mean, raw = out[..., :f].clone(), out[..., f : 2 * f]
        # an angle's mean is atan2 of two outputs (its slot in `mean` and one extra): no wrap
        mean[..., self.is_angle] = torch.atan2(out[..., 2 * f :], mean[..., self.is_angle])
        return {
            "mean": mean,
            "logvar": _softfloor(raw, MIN_LOGVAR),
            "kappa": nn.functional.softplus(raw) + 1e-3,
        }

    def log_likelihood(self, y: Tensor, p: dict[str, Tensor]) -> Tensor:
        """log p(y|z, θ) summed over the F dimensions, (...,)."""
        gauss = -0.5 * (LOG2PI + p["logvar"] + (y - p["mean"]) ** 2 * torch.exp(-p["logvar"]))
        k = p["kappa"]
        # log I0(κ) = log i0e(κ) + κ, stable for large κ
        vonmises = k * (torch.cos(y - p["mean"]) - 1) - LOG2PI - torch.log(torch.special.i0e(k))
        return torch.where(self.is_angle, vonmises, gauss).sum(-1)

    # --- bounds on log p(x|θ) ------------------------------------------------------------
    def log_bound(self, x: Tensor, c: Tensor, noise: Tensor | None = None) -> Tensor:
        r"""A lower bound on log p(y|θ) per event, (N,).

        Arguments:
            x: Raw events, (N, F).
            c: Conditions (D,) or (N, D) in their own units.
            noise: Standard-normal draws for the encoder, (N, K, L); K = 1 gives the ELBO
                with the analytic KL term, K > 1 the importance-weighted bound. None: fresh
                draws with K = 1 (training).
        """
        y = self.represent(self._check(x))
        cs = self.condition(torch.as_tensor(c), len(y))
        m, logvar = self.encode(y, cs)
        if noise is None:
            noise = torch.randn(len(y), 1, self.latent_dim, device=y.device)
        k = noise.shape[1]
        z = m[:, None] + torch.exp(0.5 * logvar)[:, None] * noise  # (N, K, L)
        p = self.decode(z, cs[:, None].expand(-1, k, -1))
        log_px = self.log_likelihood(y[:, None], p)  # (N, K)
        if k == 1:
            kl = 0.5 * (m**2 + torch.exp(logvar) - 1 - logvar).sum(-1)
            return log_px[:, 0] - kl
        log_q = -0.5 * (noise**2 + LOG2PI + logvar[:, None]).sum(-1)
        log_pz = -0.5 * (z**2 + LOG2PI).sum(-1)
        return torch.logsumexp(log_px + log_pz - log_q, 1) - math.log(k)

    def _check(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != len(self.feature_names):
            raise InputError(
                f"cVAE expects x with shape (N, {len(self.feature_names)}) for columns "
                f"{', '.join(self.feature_names)}; got {tuple(x.shape)}"
            )
        return x.to(self.mean)

    # --- generation ----------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, c: ArrayLike, n: int, rng: np.random.Generator) -> NDArray[np.float64]:
        """n raw events x (n, F) at conditions c, (D,) or (n, D); z and noise from ``rng``."""
        z = torch.from_numpy(rng.standard_normal((n, self.latent_dim))).to(self.mean)
        cs = self.condition(torch.as_tensor(np.asarray(c, dtype=np.float64)), n)
        p = {k: v.double().cpu().numpy() for k, v in self.decode(z, cs).items()}
        angle = self.is_angle.cpu().numpy()
        y = p["mean"] + np.exp(0.5 * p["logvar"]) * rng.standard_normal(p["mean"].shape)
        if angle.any():
            y[:, angle] = rng.vonmises(p["mean"][:, angle], p["kappa"][:, angle])
        return self.unrepresent(y)

    def generate(self, c: ArrayLike, n: int, rng: np.random.Generator) -> EventTable:
        """n generated events at θ (or conditions) c as an EventTable with the feature
        columns and the condition columns (``theta_lambda``, ... for θ)."""
        c = np.asarray(c, dtype=np.float64)
        x = self.sample(c, n, rng)
        cc = np.broadcast_to(c, (n, len(self.condition_names)))
        columns = dict(zip(self.feature_names, x.T, strict=True))
        columns |= {name: cc[:, i].copy() for i, name in enumerate(self.condition_columns)}
        return EventTable(columns, {"generator": "cvae"})
