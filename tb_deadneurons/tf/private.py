"""The one private TensorFlow API the TF op relies on, with why.

- ``tensorflow.python.ops.summary_ops_v2._summary_state``
  (``default_summary_writer``): the op keeps its metadata-once flag per
  default writer, and TensorFlow has no public way to name the current one.
"""


def default_summary_writer():
    """TensorFlow's current default summary writer, or None."""
    try:
        from tensorflow.python.ops import summary_ops_v2

        return summary_ops_v2._summary_state.writer
    except (ImportError, AttributeError):  # a TensorFlow without it
        return None
