"""Ratio models: networks that estimate r(x|θ) = p(x|θ)/p(x|θ0) at detector level.

Every model has ``feature_names``, ``prior``, ``kind`` and
``log_ratio(x (N, F), theta (3,) or (N, 3)) -> (N,)``; see the shared contract in
:class:`~dyfit.networks.mlp.RatioModel`.
"""

from dyfit.networks.classifier import ParametrizedClassifier
from dyfit.networks.mlp import MLP, FeatureEncoder, RatioModel, fold_batchnorm
from dyfit.networks.moments import AngularMomentRegressor

__all__ = [
    "MODEL_KINDS",
    "AngularMomentRegressor",
    "FeatureEncoder",
    "MLP",
    "ParametrizedClassifier",
    "RatioModel",
    "fold_batchnorm",
]

# kind -> class, for rebuilding a model from a checkpoint manifest
MODEL_KINDS: dict[str, type[RatioModel]] = {
    ParametrizedClassifier.kind: ParametrizedClassifier,
    AngularMomentRegressor.kind: AngularMomentRegressor,
}
