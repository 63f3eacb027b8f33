"""The TensorBoard side: the plugin, its routes, the reader and the damage scan.

``plugin`` (the loader TensorBoard's entry point names, the WSGI routes),
``routes`` (pure request -> JSON functions), ``reader`` (snapshots through
TensorBoard's data provider), ``records`` (the event files' damage scanner).
Imports ``analysis`` and ``format``, never a writer, TensorFlow, Keras,
torch or jax.
"""
