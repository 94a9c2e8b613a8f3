r"""DCTR: reweight the cVAE's generated events to the simulation (arXiv:1907.08209, 2009.03796).

A θ-parametrised classifier f(x, θ) separates simulated events at θ (label 1) from
cVAE-generated events at the same θ (label 0). Each generated event takes the θ of one
simulated event, so both classes share the θ marginal of the accepted events and the
minimiser of the balanced cross-entropy is the conditional log-ratio

    f(x, θ) = log p_sim(x|θ) − log p_cVAE(x|θ)   (arXiv:1506.02169, its eq. 2).

The generated side is drawn afresh every epoch (cheap): the classifier cannot memorise it.

Calibration. The true ratio satisfies E_cVAE[r | θ] = 1 at every θ, and a fit of θ is
sensitive to its θ-dependence: a slope ε in log E[r|θ] biases θ̂ by ε / I, with I the
Fisher information per event (I_λ ≈ 0.01 for SeaQuest at N = 2·10⁴, so ε = 10⁻³ → 0.1).
So the logit gets a quadratic offset a·φ(θ), φ = (1, θ_j, θ_jθ_k), whose coefficients
solve the convex problem min_a E[exp(f + a·φ)] − E[a·φ] on a large generated sample:
its stationarity condition is E[(r − 1) φ(θ)] = 0, the moments of E[r|θ] = 1.

The body is the SiLU MLP of the cVAE (:func:`~dyfit.networks.cvae.smooth_mlp`), not the
ReLU :class:`~dyfit.networks.mlp.MLP`: the fit's curvature in θ must not vanish piecewise.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from pydantic import Field
from torch import Tensor, nn

from dyfit.config import StrictModel
from dyfit.errors import InputError
from dyfit.networks.cvae import condition_bounds, smooth_mlp
from dyfit.networks.mlp import FeatureEncoder
from dyfit.physics.angular import THETA_NAMES
from dyfit.training.device import torch_threads
from dyfit.training.stopping import EarlyStopping

__all__ = [
    "DCTRReweighter",
    "DCTRConfig",
    "DCTRHistory",
    "draw_conditions",
    "fit_dctr_weights",
    "calibrate",
    "train_dctr",
]


class DCTRReweighter(nn.Module):
    r"""log r(x, θ) = log p_sim(x|θ) − log p_cVAE(x|θ) for raw events x (N, F).

    Arguments:
        feature_names: The raw columns of x (those of the cVAE it corrects).
        condition_names: The conditions θ (default λ, μ, ν).
        bounds: The cVAE's training box, (D, 2); θ is scaled onto [−1, 1] with it.
        width, depth: The SiLU MLP's layer sizes.
    """

    kind = "dctr"

    def __init__(
        self,
        feature_names: Sequence[str],
        condition_names: Sequence[str] = THETA_NAMES,
        bounds: ArrayLike = ((0.0, 2.0), (-0.5, 0.5), (-0.5, 0.5)),
        width: int = 64,
        depth: int = 3,
    ) -> None:
        super().__init__()
        self.feature_names = tuple(feature_names)
        self.condition_names = tuple(condition_names)
        self.bounds = condition_bounds(bounds, self.condition_names, "DCTR")
        self.width, self.depth = width, depth
        self.encoder = FeatureEncoder(self.feature_names, "cossin")
        d = len(self.condition_names)
        self.body = smooth_mlp(len(self.encoder.names) + d, 1, width, depth)
        self.register_buffer("calibration", torch.zeros(1 + d + d * (d + 1) // 2))

    def architecture(self) -> dict[str, Any]:
        """The JSON-serialisable constructor arguments that rebuild this model."""
        return {
            "feature_names": list(self.feature_names),
            "condition_names": list(self.condition_names),
            "bounds": self.bounds.tolist(),
            "width": self.width,
            "depth": self.depth,
        }

    def scaled(self, c: Tensor, n: int) -> Tensor:
        """Conditions (D,) or (N, D) → (N, D) on [−1, 1]."""
        b = torch.as_tensor(self.bounds).to(self.encoder.mean)
        c = torch.as_tensor(c).to(self.encoder.mean)
        c = c.expand(n, -1) if c.dim() == 1 else c
        return (2 * c - b[:, 0] - b[:, 1]) / (b[:, 1] - b[:, 0])

    @staticmethod
    def basis(cs: Tensor) -> Tensor:
        """φ(θ) = (1, θ_j, θ_jθ_k for j ≤ k) of scaled conditions (N, D) → (N, P)."""
        j, k = torch.triu_indices(cs.shape[1], cs.shape[1])
        return torch.cat([torch.ones_like(cs[:, :1]), cs, cs[:, j] * cs[:, k]], -1)

    def logit(self, x: Tensor, c: Tensor) -> Tensor:
        """The classifier's uncalibrated output f(x, θ), (N,); x (N, F), c (D,) or (N, D)."""
        if x.dim() != 2 or x.shape[1] != len(self.feature_names):
            raise InputError(
                f"DCTR expects x with shape (N, {len(self.feature_names)}) for columns "
                f"{', '.join(self.feature_names)}; got {tuple(x.shape)}"
            )
        x = x.to(self.encoder.mean)
        return self.body(torch.cat([self.encoder(x), self.scaled(c, len(x))], -1))[:, 0]

    def log_ratio(self, x: Tensor, c: Tensor) -> Tensor:
        r"""log r(x, θ) = f(x, θ) + a·φ(θ), (N,): add it to log p_cVAE(x|θ)."""
        f = self.logit(x, c)
        return f + self.basis(self.scaled(c, len(f))) @ self.calibration

    @torch.no_grad()
    def ratio(self, x: NDArray, c: ArrayLike) -> NDArray[np.float64]:
        """r(x, θ) in NumPy, (N,): the weights that turn generated events into simulated."""
        out = [
            self.log_ratio(torch.as_tensor(x[s : s + 65536]), self._rows(c, s, len(x)))
            for s in range(0, len(x), 65536)
        ]
        return np.exp(torch.cat(out).double().numpy())

    @staticmethod
    def _rows(c: ArrayLike, s: int, n: int) -> Tensor:
        c = torch.as_tensor(np.asarray(c, dtype=np.float64))
        return c if c.dim() == 1 else c[s : min(s + 65536, n)]


class DCTRConfig(StrictModel):
    """A DCTR training run against one cVAE (``dyfit train-dctr``)."""

    events: int = Field(200_000, ge=2)
    validation_events: int = Field(50_000, ge=2)
    calibration_events: int = Field(1_000_000, ge=100)
    epochs: int = Field(30, ge=1)
    width: int = Field(64, ge=1)
    depth: int = Field(3, ge=1)
    batch_size: int = Field(1024, ge=2)
    learning_rate: float = Field(1e-3, gt=0)
    patience: int = Field(5, ge=1)
    seed: int = 0
    threads: int | None = Field(None, ge=1)


@dataclass
class DCTRHistory:
    """Per-epoch ``train_loss``/``val_loss`` (BCE, nats; log 2 = no separation), best epoch."""

    records: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    calibration: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def draw_conditions(cvae: Any, n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """n conditions (n, D) from the cVAE's prior (uniform in its box for other conditions)."""
    prior = cvae.prior
    if prior is not None:
        return prior.sample(n, rng)
    return rng.uniform(cvae.bounds[:, 0], cvae.bounds[:, 1], (n, len(cvae.bounds)))


def _bce(model: DCTRReweighter, x: Tensor, c: Tensor, y: Tensor, chunk: int = 65536) -> float:
    with torch.no_grad():
        out = torch.cat(
            [model.logit(x[s : s + chunk], c[s : s + chunk]) for s in range(0, len(x), chunk)]
        )
        return nn.functional.binary_cross_entropy_with_logits(out, y).item()


def fit_dctr_weights(
    model: DCTRReweighter,
    cvae: Any,
    train: tuple[NDArray, NDArray],
    validation: tuple[NDArray, NDArray],
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    patience: int,
    seed: int,
    history: DCTRHistory | None = None,
) -> DCTRHistory:
    """Train ``model`` in place on simulated (x (N, F), θ (N, D)) against cVAE events at the
    same θ (fresh each epoch); early stopping on ``validation``, best weights restored."""
    rng = np.random.default_rng([seed, 17])
    torch.manual_seed(seed)
    history = history or DCTRHistory()

    def pairs(x: NDArray, c: NDArray) -> tuple[Tensor, Tensor, Tensor]:
        gen = cvae.sample(c, len(c), rng)
        xx = torch.as_tensor(np.concatenate([x, gen]), dtype=torch.float32)
        cc = torch.as_tensor(np.concatenate([c, c]), dtype=torch.float32)
        y = torch.cat([torch.ones(len(x)), torch.zeros(len(x))])
        return xx, cc, y

    xv, cv, yv = pairs(*validation)
    model.encoder.fit(xv)
    optimiser = torch.optim.Adam(model.parameters(), learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.5, patience=2)
    stopping = EarlyStopping(patience)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        x, c, y = pairs(*train)
        model.train()
        total = 0.0
        for idx in torch.randperm(len(x), generator=generator).split(batch_size):
            loss = nn.functional.binary_cross_entropy_with_logits(
                model.logit(x[idx], c[idx]), y[idx]
            )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += loss.item() * len(idx)
        model.eval()
        val = _bce(model, xv, cv, yv)
        history.records.append(
            {
                "epoch": epoch,
                "train_loss": total / len(x),
                "val_loss": val,
                "lr": optimiser.param_groups[0]["lr"],
            }
        )
        stop = stopping.update(val, model, epoch)
        history.best_epoch, history.stopped_early = stopping.best_epoch, stop
        if stop:
            break
        scheduler.step(val)
    stopping.restore(model)
    return history


@torch.no_grad()
def calibrate(
    model: DCTRReweighter, cvae: Any, n: int, rng: np.random.Generator, steps: int = 30
) -> NDArray[np.float64]:
    """Set the offset a (module docstring) from n generated events; returns a, (P,).

    Newton's method on the convex L(a) = mean(exp(f + φa)) − mean(φa), with step halving.
    """
    c = draw_conditions(cvae, n, rng)
    x = cvae.sample(c, n, rng)
    model.calibration.zero_()
    f = np.log(model.ratio(x, c))  # the bare logit: calibration is zero now
    phi = model.basis(model.scaled(torch.as_tensor(c), n)).double().numpy()

    def loss(a: NDArray) -> float:
        return float(np.mean(np.exp(f + phi @ a)) - np.mean(phi @ a))

    a = np.zeros(phi.shape[1])
    for _ in range(steps):
        e = np.exp(f + phi @ a)
        grad = phi.T @ (e - 1) / n
        step = np.linalg.solve((phi * e[:, None]).T @ phi / n, grad)
        t = 1.0
        while loss(a - t * step) > loss(a) and t > 1e-4:
            t /= 2
        a = a - t * step
        if np.max(np.abs(t * step)) < 1e-10:
            break
    model.calibration.copy_(torch.as_tensor(a))
    return a


def train_dctr(config: DCTRConfig, cvae: Any, source: Any) -> tuple[DCTRReweighter, DCTRHistory]:
    """Train and calibrate the reweighter of ``cvae`` against ``source`` (``simulate(n, θ (n,
    D), rng)``; θ per event from the cVAE's prior, read back from the accepted events)."""
    from dyfit.training.cvae import draw_sample

    with torch_threads(config.threads):
        t0 = time.perf_counter()
        rng = np.random.default_rng(config.seed)
        torch.manual_seed(config.seed)
        model = DCTRReweighter(
            cvae.feature_names, cvae.condition_names, cvae.bounds, config.width, config.depth
        )

        def sample(n: int) -> tuple[NDArray, NDArray]:
            return draw_sample(cvae, source, n, lambda m, r: draw_conditions(cvae, m, r), rng)

        validation, train = sample(config.validation_events), sample(config.events)
        history = fit_dctr_weights(
            model.eval(),
            cvae,
            train,
            validation,
            epochs=config.epochs,
            batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            patience=config.patience,
            seed=config.seed,
        )
        history.calibration = calibrate(model.eval(), cvae, config.calibration_events, rng).tolist()
        history.seconds = time.perf_counter() - t0
        return model.eval(), history
