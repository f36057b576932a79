"""Detectors: online-learning models (river) that score orders and customers.

Pure estimators over plain dicts, with no Kafka or Redis import. The order anomaly detector
and the late-payment model arrive with the detectors issue; until then decisions carry no
scores and ``model_version`` is ``None``.
"""
