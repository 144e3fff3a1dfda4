"""Small trained models shipped with the package, for examples and tests."""

from captum_genomics.zoo.ctcf import CTCFNet, ctcf_split, load_ctcf_metadata, load_ctcf_model

__all__ = ["CTCFNet", "ctcf_split", "load_ctcf_metadata", "load_ctcf_model"]
