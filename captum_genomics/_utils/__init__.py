"""One home for each small job the methods share.

- :mod:`.captum`: the one module that imports Captum's private helpers.
- :mod:`.checks`: input checks that raise clear errors naming the argument.
- :mod:`.targets`: Captum ``target`` validation and selection.
- :mod:`.batching`: per-example indexing of inputs and ``additional_forward_args``.
- :mod:`.devices`: the device and dtype of a model.
- :mod:`.attention`: PyTorch's fused attention path, off for a block.
- :mod:`.files`: atomic single-file writes.
- :mod:`.outputs`: a job's output folder: checked first, staged, moved into place with the manifest last.
- :mod:`.grad_mode`: autograd inside the user's ``no_grad``/``inference_mode``.
- :mod:`.models`: loading a user's model from ``MODULE_OR_FILE:NAME`` and weights.
- :mod:`.figures`: matplotlib, imported lazily.
- :mod:`.deprecation`: old keyword names kept for one release.
"""
