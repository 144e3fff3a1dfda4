"""Cells x genes from any container: a tensor, numpy array, scipy sparse matrix or AnnData.

The one place that reads an AnnData (``.X``, a layer or ``.raw``) or a sparse
matrix for the methods. Nothing here imports anndata: an AnnData is recognised
by its class, so the sequence side installs without the ``sc`` extra.
"""

from __future__ import annotations

from typing import Any

import math
import numpy as np
import torch
from torch import Tensor

from captum_genomics._utils.checks import check_finite

__all__ = ["FeatureRows", "anndata_matrix", "anndata_var_names", "take_columns", "is_anndata",
           "is_scipy_sparse"]


def is_anndata(x: Any) -> bool:
    return any(c.__name__ == "AnnData" and c.__module__.split(".")[0] == "anndata"
               for c in type(x).__mro__)


def is_scipy_sparse(x: Any) -> bool:
    try:
        import scipy.sparse
    except ImportError:  # pragma: no cover - scipy is a dependency
        return False
    return scipy.sparse.issparse(x)


def anndata_matrix(adata: Any, layer: str | None, use_raw: bool, name: str) -> Any:
    """``adata.X``, ``adata.layers[layer]`` or ``adata.raw.X``."""
    if layer is not None and use_raw:
        raise ValueError(
            f"`layer`={layer!r} and `use_raw=True` were both given for `{name}`; pick one "
            "(a layer of the AnnData, or its `.raw`)."
        )
    if use_raw:
        if adata.raw is None:
            raise ValueError(
                f"`use_raw=True` but the AnnData `{name}` has no `.raw`; leave `use_raw` out to "
                "use `.X`, or pass `layer=`."
            )
        return adata.raw.X
    if layer is not None:
        if layer not in adata.layers:
            raise ValueError(
                f"`layer`={layer!r} is not a layer of the AnnData `{name}`; available layers: "
                f"{sorted(adata.layers.keys())}."
            )
        return adata.layers[layer]
    if adata.X is None:
        raise ValueError(f"The AnnData `{name}` has no `.X`; pass `layer=` or `use_raw=True`.")
    return adata.X


def anndata_var_names(adata: Any, use_raw: bool) -> list[str]:
    """The gene names of the matrix :func:`anndata_matrix` reads, as strings.

    ``adata.raw.var_names`` with ``use_raw=True``, else ``adata.var_names``
    (layers share ``.X``'s genes).
    """
    names = adata.raw.var_names if use_raw else adata.var_names
    return [str(v) for v in names]


def take_columns(matrix: Any, columns: Any) -> Any:
    """Columns ``columns`` (int indices, in that order) of a 2-D matrix, same kind of container.

    A scipy sparse matrix stays sparse (CSR), a tensor stays a tensor; anything
    else becomes a C-contiguous numpy array (as the rows of a C-ordered matrix
    are, so that the same values give the same bits downstream).
    """
    if isinstance(matrix, Tensor):
        return matrix.index_select(1, torch.as_tensor(columns, dtype=torch.long,
                                                      device=matrix.device))
    if is_scipy_sparse(matrix):
        return matrix.tocsr()[:, columns]
    return np.ascontiguousarray(np.asarray(matrix)[:, columns])


class FeatureRows:
    """Rows of a dense tensor, numpy array, scipy sparse matrix or AnnData, as tensors.

    Validates on construction (at least two axes, at least one example, real
    dtype, finite values) and converts lazily, ``rows(lo, hi)`` at a time, so a
    sparse matrix is densified one batch at a time.
    """

    def __init__(self, inputs: Any, layer: str | None, use_raw: bool, name: str) -> None:
        self.name = name
        self.is_tensor = isinstance(inputs, Tensor)
        if is_anndata(inputs):
            data = anndata_matrix(inputs, layer, use_raw, name)
        else:
            if layer is not None or use_raw:
                raise ValueError(
                    f"`layer` and `use_raw` select a matrix of an AnnData; `{name}` is a "
                    f"{type(inputs).__name__}. Leave them out."
                )
            data = inputs
        if isinstance(data, Tensor):
            if data.layout != torch.strided:
                data = data.to_dense()
            if data.is_complex():
                raise TypeError(f"`{name}` must hold real numbers, got dtype {data.dtype}.")
            self.kind, self.data = "tensor", data.detach()
        elif is_scipy_sparse(data):
            self.kind, self.data = "sparse", data.tocsr()
        else:
            try:
                arr = np.asarray(data)
            except Exception as err:  # noqa: BLE001 - report what was received
                raise TypeError(
                    f"`{name}` must be a torch.Tensor, numpy array, scipy sparse matrix or "
                    f"AnnData, got {type(data).__name__}."
                ) from err
            if arr.dtype.kind not in "biuf":
                raise TypeError(
                    f"`{name}` must be a torch.Tensor, numpy array, scipy sparse matrix or "
                    f"AnnData of real numbers, got {type(data).__name__} of dtype {arr.dtype}."
                )
            self.kind, self.data = "numpy", arr
        shape = tuple(int(s) for s in self.data.shape)
        if len(shape) < 2:
            raise ValueError(
                f"`{name}` must have a batch axis and at least one feature axis, shape "
                f"(N, *feature_shape), got shape {shape}."
            )
        if shape[0] == 0:
            raise ValueError(f"`{name}` is an empty batch (shape {shape}); need N >= 1 examples.")
        self.shape = shape
        self.n = shape[0]
        self.n_features = math.prod(int(s) for s in shape[1:])
        self._check_finite()

    def native_dtype(self, fallback: torch.dtype) -> torch.dtype:
        """The data's floating dtype as a torch dtype, or ``fallback`` for other dtypes."""
        if self.kind == "tensor":
            return self.data.dtype if self.data.is_floating_point() else fallback
        kind = self.data.dtype
        if kind in (np.float16, np.float32, np.float64):
            return getattr(torch, np.dtype(kind).name)
        return fallback

    def _check_finite(self) -> None:
        if self.kind == "tensor":
            check_finite(self.data, self.name)
        elif self.kind == "numpy":
            if self.data.dtype.kind == "f" and not bool(np.isfinite(self.data).all()):
                check_finite(torch.tensor(self.data), self.name)
        else:
            values = self.data.data
            if values.dtype.kind == "f" and not bool(np.isfinite(values).all()):
                coo = self.data.tocoo()
                bad = ~np.isfinite(coo.data)
                order = np.lexsort((coo.col[bad], coo.row[bad]))
                first = (int(coo.row[bad][order[0]]), int(coo.col[bad][order[0]]))
                kind = "NaN" if bool(np.isnan(coo.data).any()) else "Inf"
                raise ValueError(
                    f"`{self.name}` contains {int(bad.sum())} non-finite value(s) ({kind}), "
                    f"first at index {first}; expected finite values."
                )

    def rows(self, lo: int, hi: int, dtype: torch.dtype) -> Tensor:
        """Examples ``lo..hi-1`` as a tensor ``(hi - lo, *feature_shape)`` of ``dtype``."""
        if self.kind == "tensor":
            return self.data[lo:hi].to(dtype)
        if self.kind == "sparse":
            block = self.data[lo:hi].toarray()
        else:
            block = self.data[lo:hi]
        return torch.tensor(np.asarray(block), dtype=dtype)
