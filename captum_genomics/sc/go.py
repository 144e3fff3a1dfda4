"""Gene Ontology biological-process terms for the genes of ``pbmc68k_reduced``.

The package vendors one small table, ``captum_genomics/data/go_bp_pbmc68k.tsv``
(~35 kB): 134 GO biological-process terms, each with its genes among the 765
genes of ``scanpy.datasets.pbmc68k_reduced()`` (5 to 200 per term), its name
and its nearest kept ancestors. It was built by ``scripts/build_go_table.py``
from the SQLite files of Debian's ``r-bioc-org.hs.eg.db`` and ``r-bioc-go.db``
3.16.0-1 (ontology ``go-basic.obo`` release 2022-07-01, NCBI gene2go
2022-Sep12); annotations are propagated to ancestors through ``is_a`` and
``part_of``. The table's ``#`` header records the sources and the selection
rule; ``captum_genomics/data/NOTICE.md`` the licence (Gene Ontology data,
CC BY 4.0) and attribution.

Only pandas and numpy are needed (no scanpy).
"""

from __future__ import annotations

import io
import os
from importlib import resources

import numpy as np
import pandas as pd

__all__ = [
    "GO_TABLE_FILE",
    "load_go_terms",
    "read_go_table",
    "go_children",
    "go_gene_mask",
]

GO_TABLE_FILE = "go_bp_pbmc68k.tsv"
"""The vendored table's file name in ``captum_genomics/data``."""

_COLUMNS = ["go_id", "name", "n_genes", "n_direct", "parents", "genes"]


def _split_list(value: str) -> tuple:
    return tuple(v for v in str(value).split(",") if v) if isinstance(value, str) else ()


def read_go_table(source) -> pd.DataFrame:
    """Read a GO term table in the format of ``scripts/build_go_table.py``.

    Parameters
    ----------
    source : str, PathLike or text
        A path, or the table's text itself when it is a ``str`` that contains
        a newline.

    Returns
    -------
    pandas.DataFrame
        One row per term, index ``go_id`` (str, e.g. ``"GO:0006955"``), rows in
        the file's order (sorted by GO id), columns:

        - ``name`` : str, the term's name;
        - ``n_genes`` : int64, number of genes (after propagation to ancestors);
        - ``n_direct`` : int64, genes annotated directly to the term;
        - ``parents`` : tuple of str, the term's nearest kept ancestors (may
          be empty); every one is a row of the table;
        - ``genes`` : tuple of str, length ``n_genes``, gene symbols.

        ``.attrs`` holds the header: ``"title"`` (its first line) and each
        ``# key: value`` line as ``attrs[key] = value``.

    Raises
    ------
    FileNotFoundError
        If ``source`` names no file.
    ValueError
        If the columns differ from ``go_id, name, n_genes, n_direct, parents,
        genes``, a GO id repeats, ``n_genes`` differs from the number of genes
        listed, or a parent is not a term of the table.
    """
    if isinstance(source, str) and "\n" in source:
        text, where = source, "the given text"
    else:
        if not os.path.isfile(source):
            raise FileNotFoundError(f"`source`: no GO table at {os.fspath(source)!r}.")
        with open(source, encoding="utf-8") as fh:
            text = fh.read()
        where = repr(os.fspath(source))
    attrs: dict = {}
    body = []
    for line in text.splitlines():
        if line.startswith("#"):
            content = line[1:].strip()
            if "title" not in attrs:
                attrs["title"] = content
            elif ": " in content:
                key, value = content.split(": ", 1)
                attrs[key] = value
        elif line.strip():
            body.append(line)
    table = pd.read_csv(io.StringIO("\n".join(body) + "\n"), sep="\t", dtype=str,
                        keep_default_na=False)
    if list(table.columns) != _COLUMNS:
        raise ValueError(f"GO table {where}: columns must be {_COLUMNS}, got "
                         f"{list(table.columns)}.")
    if table["go_id"].duplicated().any():
        dup = table.loc[table["go_id"].duplicated(), "go_id"].tolist()
        raise ValueError(f"GO table {where}: repeated GO ids {dup[:5]}.")
    table["n_genes"] = table["n_genes"].astype(np.int64)
    table["n_direct"] = table["n_direct"].astype(np.int64)
    table["parents"] = table["parents"].map(_split_list)
    table["genes"] = table["genes"].map(_split_list)
    table = table.set_index("go_id")
    for go_id, row in table.iterrows():
        if len(row["genes"]) != row["n_genes"] or len(set(row["genes"])) != row["n_genes"]:
            raise ValueError(f"GO table {where}: {go_id} has n_genes={row['n_genes']} but "
                             f"{len(set(row['genes']))} distinct genes listed.")
        missing = [p for p in row["parents"] if p not in table.index]
        if missing:
            raise ValueError(f"GO table {where}: {go_id} has parents {missing} that are not "
                             "terms of the table.")
    table.attrs = attrs
    return table


def load_go_terms() -> pd.DataFrame:
    """The vendored table of GO biological-process terms for ``pbmc68k_reduced``.

    Returns
    -------
    pandas.DataFrame
        134 rows (terms), see :func:`read_go_table` for the columns; every
        term has 5 to 200 genes, all among ``pbmc68k_reduced().raw.var_names``
        (2017 symbols, as in the data set; ``.attrs["renamed"]`` lists the
        current official symbols of the renamed ones). ``.attrs`` records the
        sources (``go_source``: ontology release 2022-07-01;
        ``annotation_source``: NCBI gene2go 2022-Sep12; the Debian packages and
        SHA-256 of the SQLite files), the selection rule and the licence
        (CC BY 4.0, Gene Ontology Consortium).
    """
    ref = resources.files("captum_genomics") / "data" / GO_TABLE_FILE
    return read_go_table(ref.read_text("utf-8"))


def go_children(terms: pd.DataFrame) -> dict:
    """Parent term to child terms, from the ``parents`` column.

    Parameters
    ----------
    terms : pandas.DataFrame
        A table from :func:`load_go_terms` or :func:`read_go_table`.

    Returns
    -------
    dict of str to list of str
        Each term that is some kept term's nearest kept ancestor, mapped to
        those terms (sorted GO ids). Terms without children are absent.

    Raises
    ------
    ValueError
        If ``terms`` lacks a ``parents`` column.
    """
    if "parents" not in getattr(terms, "columns", ()):
        raise ValueError("`terms` must be a GO table with a 'parents' column, see "
                         "load_go_terms().")
    children: dict = {}
    for go_id, parents in terms["parents"].items():
        for p in parents:
            children.setdefault(p, []).append(go_id)
    return {p: sorted(c) for p, c in sorted(children.items())}


def go_gene_mask(terms: pd.DataFrame, genes) -> np.ndarray:
    """Membership of genes in terms, as a boolean matrix.

    Parameters
    ----------
    terms : pandas.DataFrame
        T terms, with a ``genes`` column (:func:`load_go_terms`).
    genes : sequence of str, length G
        The model's genes, in input order (e.g. ``PBMCData.genes``).

    Returns
    -------
    ndarray, shape=(T, G), bool
        ``mask[t, g]`` is True when gene ``g`` belongs to term ``t`` (rows in
        the order of ``terms``).

    Raises
    ------
    ValueError
        If ``genes`` repeats a gene, or a term lists a gene absent from
        ``genes``.
    """
    genes = [str(g) for g in genes]
    index = {g: j for j, g in enumerate(genes)}
    if len(index) != len(genes):
        raise ValueError("`genes` must not repeat a gene.")
    mask = np.zeros((len(terms), len(genes)), dtype=bool)
    for t, (go_id, members) in enumerate(terms["genes"].items()):
        absent = [g for g in members if g not in index]
        if absent:
            raise ValueError(f"`genes` lacks {absent[:5]} of term {go_id}.")
        mask[t, [index[g] for g in members]] = True
    return mask
