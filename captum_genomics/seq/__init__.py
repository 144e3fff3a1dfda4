"""The sequence side: FASTA and one-hot I/O, the vendored CTCF data, motifs, modisco export, logos.

- :mod:`.io`: FASTA reading and one-hot encoding ``(N, 4, L)``, ACGT order.
- :mod:`.datasets`: the GM12878 CTCF peaks, the JASPAR CTCF matrix and the demo genome (40 kb of
  human chr17) shipped with the package.
- :mod:`.motifs`: JASPAR and MEME matrices and motif scanning.
- :mod:`.motif_sites`: ground truth from motif matches or planted motifs.
- :mod:`.planted`: the planted-motif task (Koo & Ploenzke 2021) and :class:`~.planted.GroundTruth`.
- :mod:`.genome`: BED reading, indexed genomes (pyfaidx), regions to one-hot.
- :mod:`.bigwig`: bigWig tracks of attributions (pybigtools / pyBigWig).
- :mod:`.modisco`: modisco-lite input files.
- :mod:`.plot`: sequence logos of attributions (logomaker).
"""
