"""The snapshot summary: the TensorFlow op and its numpy twin, one face.

``activations`` / ``revivals`` (``tb_deadneurons.tf.summary``) compute the
statistics in the TensorFlow graph and write through ``tf.summary``;
``activations_pb`` / ``revivals_pb`` (``tb_deadneurons.format.summary``)
build the same summaries from numpy without TensorFlow. TensorFlow is
imported only when an op runs.
"""

from tb_deadneurons.format.stats import snapshot_np
from tb_deadneurons.format.summary import activations_pb, revivals_pb
from tb_deadneurons.tf.stats import snapshot_tf
from tb_deadneurons.tf.summary import activations, revivals

__all__ = [
    "activations",
    "activations_pb",
    "revivals",
    "revivals_pb",
    "snapshot_np",
    "snapshot_tf",
]
