"""The snapshot format: what every writer produces and every reader decodes.

``metadata`` (plugin name, versioned ``DeadNeuronsPluginData``, tags),
``codec`` (the uint8 row encodings), ``proto/``, ``stats`` (the numpy
reductions every writer shares), ``summary`` (the numpy summary protobufs),
``events`` and ``tfrecord`` (event files without TensorFlow), ``checks``
(argument checks with messages that name the argument). numpy, protobuf and
TensorBoard's protos only: no TensorFlow, Keras, torch or jax.
"""
