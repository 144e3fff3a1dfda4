"""Old keyword names, kept for one release with a ``DeprecationWarning`` naming the new one."""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["renamed_keyword", "renamed_training_keywords", "MISSING"]


class _Missing:
    def __repr__(self) -> str:
        return "<not given>"


MISSING: Any = _Missing()
"""Default of a deprecated keyword: tells "not given" apart from any value, None included."""


def renamed_keyword(old_name: str, old_value: Any, new_name: str, new_value: Any,
                    new_default: Any, where: str, stacklevel: int = 3) -> Any:
    """The value of a renamed keyword, accepting the old name for one release.

    Parameters
    ----------
    old_name, new_name : str
        The keyword's old and new spelling (e.g. ``"seed"``, ``"random_state"``).
    old_value : any
        What the caller passed under the old name, or :data:`MISSING`.
    new_value : any
        What the caller passed under the new name.
    new_default : any
        The new keyword's default (to tell whether it was given).
    where : str
        The function's name, for the messages.
    stacklevel : int
        Passed to :func:`warnings.warn`; 3 points at the caller of ``where``.

    Returns
    -------
    any
        ``new_value``, or ``old_value`` when only the old name was given.

    Raises
    ------
    TypeError
        If both names were given with different values.
    """
    if old_value is MISSING:
        return new_value
    if new_value is not new_default and new_value != old_value:
        raise TypeError(
            f"{where}() got both `{old_name}` (deprecated) and `{new_name}`; pass only "
            f"`{new_name}`."
        )
    warnings.warn(
        f"{where}(): `{old_name}` is deprecated and will be removed in the next release; use "
        f"`{new_name}` instead.",
        DeprecationWarning, stacklevel=stacklevel,
    )
    return old_value


def renamed_training_keywords(where: str, old_seed: Any, random_state: Any,
                              old_progress_bar: Any, show_progress: bool,
                              random_state_default: Any = 0,
                              stacklevel: int = 4) -> tuple[Any, bool]:
    """``(random_state, show_progress)`` of a training function that took ``seed``/``progress_bar``.

    ``old_seed`` and ``old_progress_bar`` are what the caller passed under the
    deprecated names (:data:`MISSING` when not given). The two renames always
    come together in the training functions; see :func:`renamed_keyword` for
    the rules (warning, and ``TypeError`` when both spellings are given with
    different values).
    """
    random_state = renamed_keyword("seed", old_seed, "random_state", random_state,
                                   random_state_default, where, stacklevel)
    show_progress = renamed_keyword("progress_bar", old_progress_bar, "show_progress",
                                    show_progress, False, where, stacklevel)
    return random_state, show_progress
