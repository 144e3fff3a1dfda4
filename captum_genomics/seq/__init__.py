"""The sequence side: FASTA and one-hot I/O, the vendored CTCF data, motifs, modisco export, logos.

- :mod:`.io`: FASTA reading and one-hot encoding ``(N, 4, L)``, ACGT order.
- :mod:`.datasets`: the GM12878 CTCF peaks and the JASPAR CTCF matrix shipped with the package.
- :mod:`.motifs`: JASPAR matrices and motif scanning.
- :mod:`.modisco`: modisco-lite input files.
- :mod:`.plot`: sequence logos of attributions (logomaker).
"""
