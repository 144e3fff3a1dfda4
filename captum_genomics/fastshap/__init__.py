"""FastSHAP: amortized Shapley value estimation (Jethani et al., ICLR 2022).

The math lives in small modules, each tested against an exact computation:

- :mod:`.players`: features or feature groups as players;
- :mod:`.games`: value functions ``v(x, S)`` (baseline, marginal, surrogate);
- :mod:`.exact`: exact Shapley values by enumerating ``2^d`` coalitions;
- :mod:`.sampling`: Shapley-kernel and uniform-size coalition samplers;
- :mod:`.normalization`: additive efficient normalization;
- :mod:`.permutation`: permutation-sampling Shapley estimates (noisy training labels);
- :mod:`.surrogate`: the masked surrogate and its training;
- :mod:`.explainer`, :mod:`.training`: the explainer network and its training;
- :mod:`.fitting`: building the game (and surrogate) and the explainer for ``FastSHAP.fit``;
- :mod:`.inference`: normalized values of a trained explainer, and efficiency gaps;
- :mod:`.io`: saving and loading trained networks and whole ``FastSHAP`` objects
  (checksummed files; :class:`FastSHAPFileError` for any file that cannot be used).
"""

from captum_genomics.fastshap.exact import (
    all_coalitions,
    exact_shapley,
    exact_shapley_from_values,
    shapley_coefficients,
)
from captum_genomics.fastshap.explainer import MLPExplainer, default_hidden_width, estimate_shapley
from captum_genomics.fastshap.games import BaselineGame, Game, MarginalGame, SurrogateGame
from captum_genomics.fastshap.io import FastSHAPFileError, load_module, payload_sha256, save_module
from captum_genomics.fastshap.normalization import additive_efficient_normalization, efficiency_gap
from captum_genomics.fastshap.permutation import permutation_shapley_estimates
from captum_genomics.fastshap.players import Players, as_players
from captum_genomics.fastshap.sampling import (
    coalitions_of_sizes,
    sample_shapley_coalitions,
    sample_uniform_size_coalitions,
    shapley_kernel_size_probs,
)
from captum_genomics.fastshap.surrogate import MaskedSurrogate, surrogate_loss, train_surrogate
from captum_genomics.fastshap.training import explainer_loss, train_explainer

__all__ = [
    "Players",
    "as_players",
    "Game",
    "BaselineGame",
    "MarginalGame",
    "SurrogateGame",
    "all_coalitions",
    "shapley_coefficients",
    "exact_shapley",
    "exact_shapley_from_values",
    "shapley_kernel_size_probs",
    "coalitions_of_sizes",
    "sample_shapley_coalitions",
    "sample_uniform_size_coalitions",
    "additive_efficient_normalization",
    "efficiency_gap",
    "permutation_shapley_estimates",
    "MLPExplainer",
    "default_hidden_width",
    "estimate_shapley",
    "MaskedSurrogate",
    "surrogate_loss",
    "train_surrogate",
    "explainer_loss",
    "train_explainer",
    "save_module",
    "load_module",
    "FastSHAPFileError",
    "payload_sha256",
]
