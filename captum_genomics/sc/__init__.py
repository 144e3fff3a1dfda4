"""The single-cell side: AnnData/sparse/numpy inputs, PBMC loaders, neighbour inputs, plots.

scanpy and anndata are imported only inside these modules, and only when a
function that needs them is called, so ``import captum_genomics`` works without
the ``sc`` extra.

- :mod:`.inputs`: rows of a tensor, numpy array, scipy sparse matrix or AnnData.
- :mod:`.pbmc`: scanpy's ``pbmc68k_reduced`` with a fixed stratified split.
- :mod:`.neighbours`: kNN neighbour inputs for attention-over-neighbours models.
- :mod:`.gene_attributions`: :func:`~.gene_attributions.class_gene_attributions`, gene
  attributions of a cell classifier for each cell's predicted class, its label, or every
  class in one pass (Captum's IntegratedGradients by default, any Captum method).
- :mod:`.anndata_results`: those results into an AnnData (``.varm``, ``.layers``/``.obsm``,
  ``.obs``, ``.uns``) and back.
- :mod:`.plot`: per-cell-type attribution plots (top genes with intervals, stacked positive
  contributions, gene x class heatmap).
- :mod:`.plot_heads`: head-ablation explained-variance plots.
"""
