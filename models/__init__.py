"""Models and decisions: training, the model registry, scoring and the flag lifecycle.

Training (:mod:`models.dataset`, :mod:`models.training` and its
companions, ``callguard train``) learns from the feature core's rows; the
registry (:mod:`models.registry`) keeps versioned skops artefacts and the
promoted one; :mod:`models.scoring`, :mod:`models.decisions` and the
allow-list (:mod:`models.allowlist`) turn feature vectors into flags.

Models may import :mod:`contracts`, :mod:`features` and :mod:`simulator`
(the scenarios training presets are built from); nothing of :mod:`streams`
or :mod:`sinks`.
"""
