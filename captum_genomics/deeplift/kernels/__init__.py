"""Fused CPU kernels (numba) for the hottest DeepLIFT rule arithmetic.

One module per rule family; each computes in one or two passes over the pair
activations what the rule's torch version computes in many, with the same float
operations in the same order where the rule's results are compared bitwise.
The rules in :mod:`captum_genomics.deeplift.rules` call them for CPU
float32/float64 tensors and keep their torch version for everything else
(GPU, half precision). Compilation is cached like the shuffles' kernels
(:func:`captum_genomics.references._kernels._kernel`); rows are split over the
package's thread pool (:func:`captum_genomics.references._draw.parallel`).

- :mod:`.relu`: the rescale multipliers of ReLU, fused into the backward.
- :mod:`.softmax`: the softmax / log-softmax rule's multipliers and backward, one pass per row.
- :mod:`.maxpool`: the max-pool rule's backward (routing and division) in one pass.
"""
