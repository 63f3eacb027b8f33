"""The TensorFlow op: ``summary`` (``activations``, ``revivals``) and the
in-graph statistics behind it (``stats``); ``private`` names the one private
TensorFlow API used. TensorFlow is imported only when an op runs.
"""
