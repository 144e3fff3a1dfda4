"""Build the vendored GO biological-process table for pbmc68k_reduced's genes.

Writes ``captum_genomics/data/go_bp_pbmc68k.tsv``: GO biological-process terms
with their ``pbmc68k_reduced`` genes, names and the hierarchy among the kept
terms. Deterministic: the same SQLite files give the same bytes (no dates or
paths of this machine are written).

Sources (Debian bookworm, no R needed; the SQLite files inside are read with
Python's ``sqlite3``)::

    apt-get download r-bioc-org.hs.eg.db r-bioc-go.db      # 3.16.0-1 both
    dpkg-deb -x r-bioc-org.hs.eg.db_3.16.0-1_all.deb x
    dpkg-deb -x r-bioc-go.db_3.16.0-1_all.deb x
    python scripts/build_go_table.py \\
        --org x/usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite \\
        --go x/usr/lib/R/site-library/GO.db/extdata/GO.sqlite

or ``python scripts/build_go_table.py --download DIR``, which runs those
``apt-get download`` and ``dpkg-deb -x`` steps in ``DIR`` first.

The rule (recorded in the table's header):

1. **Genes**: the 765 genes of ``scanpy.datasets.pbmc68k_reduced().raw``
   (2017 symbols) are mapped to Entrez Gene ids of org.Hs.eg.db by (a) the
   current official symbol; else (b) for ``MT-`` genes, the symbol without the
   prefix (NCBI's ``ND3`` for ``MT-ND3``); else (c) an alias that names exactly
   one Entrez gene whose current symbol is not itself a panel gene. The rest
   (mostly clone-based lncRNA names such as ``RP11-782C8.1``) stay unmapped.
2. **Annotations**: direct biological-process annotations of org.Hs.eg.db's
   ``go_bp`` table (NCBI gene2go), every evidence code except ``ND`` (no
   biological data available).
3. **Propagation** (true-path rule, as in DCell and NetworkVI): a gene
   annotated to a term is also a gene of every ancestor reached through
   ``is_a`` and ``part_of`` edges of GO.db's ``go_bp_parents`` (the
   ``regulates`` edges are not followed).
4. **Selection**: terms with ``MIN_GENES``..``MAX_GENES`` (5..200) panel genes
   after propagation and at least ``MIN_DIRECT`` (8) panel genes annotated
   *directly* to the term (terms curators actually use for these genes; it keeps
   the table small and drops grouping terms known only through their
   descendants). Of terms with identical gene sets, one is kept: a descendant
   before its ancestor, else the smaller GO id.
5. **Hierarchy**: a kept term's parents are its nearest kept ancestors under
   ``is_a``/``part_of`` paths (the transitive reduction of the ancestor
   relation restricted to kept terms; a dropped term in between is skipped
   over).

Columns of the table: ``go_id``, ``name``, ``n_genes``, ``n_direct``,
``parents`` (comma-separated GO ids, may be empty), ``genes`` (comma-separated
panel symbols in ``pbmc68k_reduced.raw.var_names`` order). Rows sorted by GO
id. Lines starting with ``#`` are the header (``# key: value``).

    python scripts/build_go_table.py --download /tmp/godeb [--out captum_genomics/data]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import sqlite3
import subprocess
from collections import defaultdict
from pathlib import Path

from captum_genomics._utils.files import write_bytes_atomic

MIN_GENES = 5
MAX_GENES = 200
MIN_DIRECT = 8
EXCLUDED_EVIDENCE = ("ND",)
RELATIONS = ("isa", "part of")
BP_ROOT = "GO:0008150"
TABLE_FILE = "go_bp_pbmc68k.tsv"
DEBIAN_PACKAGES = ("r-bioc-org.hs.eg.db", "r-bioc-go.db")
ORG_PATH = "usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite"
GO_PATH = "usr/lib/R/site-library/GO.db/extdata/GO.sqlite"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(folder: Path) -> tuple[Path, Path, dict]:
    """``apt-get download`` both packages into ``folder`` and unpack them there.

    Returns the two SQLite paths and ``{deb file name: sha256}``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *DEBIAN_PACKAGES], cwd=folder, check=True)
    debs = {}
    for pkg in DEBIAN_PACKAGES:
        found = sorted(folder.glob(f"{pkg}_*.deb"))
        if not found:
            raise FileNotFoundError(f"no {pkg}_*.deb in {folder}")
        deb = found[-1]
        subprocess.run(["dpkg-deb", "-x", deb.name, "x"], cwd=folder, check=True)
        debs[deb.name] = sha256(deb)
    return folder / "x" / ORG_PATH, folder / "x" / GO_PATH, debs


def debian_version(sqlite_path: Path, package: str) -> str:
    """The Debian version from ``usr/share/doc/PACKAGE/changelog.Debian.gz`` of the
    tree the SQLite file was unpacked into, or ``"unknown"``."""
    for parent in Path(sqlite_path).resolve().parents:
        log = parent / "share" / "doc" / package / "changelog.Debian.gz"
        if parent.name == "usr" and log.is_file():
            with gzip.open(log, "rt", encoding="utf-8") as fh:
                first = fh.readline()
            if "(" in first and ")" in first:
                return first[first.index("(") + 1:first.index(")")]
    return "unknown"


def connect(path: Path) -> sqlite3.Connection:
    if not Path(path).is_file():
        raise FileNotFoundError(f"no SQLite file at {path}")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def metadata(con: sqlite3.Connection) -> dict:
    return dict(con.execute("SELECT name, value FROM metadata"))


def panel_genes() -> list[str]:
    import scanpy

    return [str(g) for g in scanpy.datasets.pbmc68k_reduced().raw.var_names]


def map_genes(org: sqlite3.Connection, genes: list[str]) -> tuple[dict, dict]:
    """Panel symbol -> Entrez ``_id`` (rules 1a-c), and panel symbol -> current symbol
    for the genes mapped by 1b or 1c."""
    by_symbol = {s: i for i, s in org.execute("SELECT _id, symbol FROM gene_info")}
    symbol_of = {i: s for s, i in by_symbol.items()}
    aliases = defaultdict(set)
    for i, alias in org.execute("SELECT _id, alias_symbol FROM alias"):
        aliases[alias].add(i)
    panel = set(genes)
    mapped, renamed = {}, {}
    for g in genes:
        if g in by_symbol:
            mapped[g] = by_symbol[g]
        elif g.startswith("MT-") and g[3:] in by_symbol:
            mapped[g] = by_symbol[g[3:]]
            renamed[g] = g[3:]
        elif len(aliases.get(g, ())) == 1:
            i = next(iter(aliases[g]))
            if symbol_of.get(i) is not None and symbol_of[i] not in panel:
                mapped[g] = i
                renamed[g] = symbol_of[i]
    return mapped, renamed


def build(org: sqlite3.Connection, go: sqlite3.Connection, genes: list[str]) -> dict:
    """The kept terms and everything the header reports."""
    mapped, renamed = map_genes(org, genes)
    panel_of = {i: g for g, i in mapped.items()}
    direct = defaultdict(set)
    placeholders = ",".join("?" * len(EXCLUDED_EVIDENCE))
    for i, go_id, _ in org.execute(
            f"SELECT _id, go_id, evidence FROM go_bp WHERE evidence NOT IN ({placeholders})",
            EXCLUDED_EVIDENCE):
        if i in panel_of:
            direct[go_id].add(panel_of[i])
    go_of = dict(go.execute("SELECT _id, go_id FROM go_term"))
    names = dict(go.execute("SELECT go_id, term FROM go_term WHERE ontology = 'BP'"))
    parents = defaultdict(set)
    rel = ",".join("?" * len(RELATIONS))
    for child, parent in go.execute(
            f"SELECT _id, _parent_id FROM go_bp_parents WHERE relationship_type IN ({rel})",
            RELATIONS):
        if go_of[parent] in names:
            parents[go_of[child]].add(go_of[parent])

    ancestors: dict[str, frozenset] = {}

    def ancestors_of(term: str) -> frozenset:  # itself included; iterative DFS
        stack = [term]
        while stack:
            t = stack[-1]
            if t in ancestors:
                stack.pop()
                continue
            todo = [p for p in parents.get(t, ()) if p not in ancestors]
            if todo:
                stack.extend(sorted(todo))
                continue
            out = {t}
            for p in parents.get(t, ()):
                out |= ancestors[p]
            ancestors[t] = frozenset(out)
            stack.pop()
        return ancestors[term]

    unknown = sorted(t for t in direct if t not in names)
    if unknown:
        raise ValueError(f"annotations to terms absent from GO.db's BP terms: {unknown[:5]}")
    propagated = defaultdict(set)
    for term, gs in direct.items():
        for a in ancestors_of(term):
            propagated[a] |= gs
    kept = sorted(t for t, gs in propagated.items()
                  if MIN_GENES <= len(gs) <= MAX_GENES and len(direct.get(t, ())) >= MIN_DIRECT
                  and t != BP_ROOT)
    # identical gene sets: keep a descendant before its ancestor, else the smaller id
    by_set = defaultdict(list)
    for t in kept:
        by_set[frozenset(propagated[t])].append(t)
    dropped = set()
    for group in by_set.values():
        if len(group) > 1:
            best = min(group, key=lambda t: (-len(ancestors_of(t) & set(group)), t))
            dropped |= set(group) - {best}
    kept = [t for t in kept if t not in dropped]
    kept_set = set(kept)
    kept_parents = {}
    for t in kept:
        anc = (ancestors_of(t) - {t}) & kept_set
        nearest = {a for a in anc
                   if not any(a in ancestors_of(b) for b in anc if b != a)}
        kept_parents[t] = sorted(nearest)
    order = {g: j for j, g in enumerate(genes)}
    rows = [{"go_id": t, "name": names[t], "n_genes": len(propagated[t]),
             "n_direct": len(direct.get(t, ())), "parents": kept_parents[t],
             "genes": sorted(propagated[t], key=order.__getitem__)} for t in kept]
    covered = set().union(*(r["genes"] for r in rows)) if rows else set()
    return {"rows": rows, "mapped": mapped, "renamed": renamed,
            "annotated": set().union(*direct.values()) if direct else set(),
            "covered": covered, "n_candidates": len(propagated), "n_identical": len(dropped)}


def render(result: dict, genes: list[str], org_meta: dict, go_meta: dict, sources: dict) -> str:
    rows = result["rows"]
    sizes = sorted(r["n_genes"] for r in rows)
    median = (sizes[(len(sizes) - 1) // 2] + sizes[len(sizes) // 2]) / 2 if sizes else 0
    n_edges = sum(len(r["parents"]) for r in rows)
    head = [
        "GO biological-process terms for the genes of scanpy's pbmc68k_reduced",
        "format: captum_genomics go table 1",
        "built_by: scripts/build_go_table.py",
        "licence: CC BY 4.0 (Gene Ontology data); see captum_genomics/data/NOTICE.md",
        "attribution: Gene Ontology Consortium, http://geneontology.org; cite Ashburner et "
        "al. 2000 Nat Genet 25:25-29 and the GO release date below",
        f"go_source: {go_meta.get('GOSOURCENAME')} {go_meta.get('GOSOURCEURL')} "
        f"release {go_meta.get('GOSOURCEDATE')}",
        f"annotation_source: {org_meta.get('GOEGSOURCENAME')} gene2go "
        f"{org_meta.get('GOEGSOURCEURL')} {org_meta.get('GOEGSOURCEDATE')}",
        *[f"{k}: from Debian package {v}" for k, v in sources.items()],
        f"evidence: all codes except {', '.join(EXCLUDED_EVIDENCE)}",
        "propagation: to ancestors through is_a and part_of (true-path rule)",
        f"selection: {MIN_GENES} <= n_genes <= {MAX_GENES} and n_direct >= {MIN_DIRECT}, "
        f"root {BP_ROOT} excluded, identical gene sets kept once "
        "(descendant before ancestor, else smaller id)",
        "parents: nearest kept ancestors under is_a/part_of paths",
        f"panel_genes: {len(genes)}; mapped to Entrez Gene: {len(result['mapped'])}; "
        f"with a BP annotation: {len(result['annotated'])}; in a kept term: "
        f"{len(result['covered'])}",
        "renamed: " + ", ".join(f"{k}={v}" for k, v in sorted(result["renamed"].items())),
        f"terms: {len(rows)} (of {result['n_candidates']} BP terms with a panel gene; "
        f"{result['n_identical']} duplicate gene sets dropped); "
        f"median n_genes {median:g}; parent edges {n_edges}",
        "columns: go_id, name, n_genes (propagated), n_direct (annotated directly), "
        "parents (comma-separated GO ids), genes (comma-separated, panel order)",
    ]
    out = io.StringIO()
    for line in head:
        out.write(f"# {line}\n")
    out.write("go_id\tname\tn_genes\tn_direct\tparents\tgenes\n")
    for r in rows:
        if "\t" in r["name"] or "\n" in r["name"]:
            raise ValueError(f"tab or newline in the name of {r['go_id']}")
        out.write(f"{r['go_id']}\t{r['name']}\t{r['n_genes']}\t{r['n_direct']}\t"
                  f"{','.join(r['parents'])}\t{','.join(r['genes'])}\n")
    return out.getvalue()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--org", type=Path, help="org.Hs.eg.sqlite")
    parser.add_argument("--go", type=Path, help="GO.sqlite")
    parser.add_argument("--download", type=Path,
                        help="folder: apt-get download and unpack both packages here")
    parser.add_argument("--out", type=Path, default=Path("captum_genomics/data"))
    args = parser.parse_args()
    if args.download is not None:
        org_path, go_path, debs = download(args.download)
        for name, digest in debs.items():
            print(f"{name}: sha256 {digest}")
    elif args.org is None or args.go is None:
        parser.error("give --download DIR, or both --org and --go")
    else:
        org_path, go_path = args.org, args.go
    org, go = connect(org_path), connect(go_path)
    sources = {}
    for path, pkg in ((org_path, DEBIAN_PACKAGES[0]), (go_path, DEBIAN_PACKAGES[1])):
        sources[Path(path).name] = (f"{pkg} {debian_version(path, pkg)}, "
                                    f"sha256 {sha256(path)}")
    genes = panel_genes()
    result = build(org, go, genes)
    text = render(result, genes, metadata(org), metadata(go), sources)
    path = write_bytes_atomic(args.out / TABLE_FILE, text.encode("utf-8"))
    rows = result["rows"]
    print(f"{path}: {len(rows)} terms, {len(result['covered'])} genes covered, "
          f"{len(text.encode())} bytes")


if __name__ == "__main__":
    main()
