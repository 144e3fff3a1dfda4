"""End-to-end jobs on real data, callable from Python and from ``captum-genomics``."""
