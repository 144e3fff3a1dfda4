"""captum-genomics: validated, fast interpretability methods for genomics models.

Attribution methods follow Captum's ``Attribution`` API; see the README and
``docs/`` for the workflows.
"""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
