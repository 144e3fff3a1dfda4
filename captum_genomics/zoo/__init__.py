"""Small trained models shipped with the package, for examples and tests."""

from captum_genomics.zoo.ctcf import (
    CTCFNet,
    ctcf_split,
    load_ctcf_metadata,
    load_ctcf_model,
)
from captum_genomics.zoo.ctcf_transformer import (
    CTCFTransformer,
    load_ctcf_transformer,
    load_ctcf_transformer_metadata,
)

__all__ = [
    "CTCFNet",
    "CTCFTransformer",
    "ctcf_split",
    "load_ctcf_metadata",
    "load_ctcf_model",
    "load_ctcf_transformer",
    "load_ctcf_transformer_metadata",
]
