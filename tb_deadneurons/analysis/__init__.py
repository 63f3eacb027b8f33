"""What the snapshots mean: numpy only, shared by the dashboard, report and API.

``classify`` (dead, tau-dormant, grad-dormant, revived, died-at, dying),
``hints`` (patterns and remedies), ``overview`` (wide layers aggregated for
drawing); for the writers, ``progress`` (what they say while training) and
``period`` (when they snapshot). Imports ``format`` only.
"""
