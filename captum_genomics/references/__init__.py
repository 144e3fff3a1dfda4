"""Per-example references (backgrounds) for DeepLIFT/SHAP, shaped ``(N, K, 4, L)``."""
