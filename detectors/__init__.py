"""Detectors: online-learning models (river-compatible, over plain dicts) that score orders
and customers, with no Kafka or Redis import.

- :class:`LatePaymentModel` — probability that an invoice is paid late or written off, with
  reason codes (``learn_one`` / ``predict_proba_one``).
- :class:`OrderAnomalyDetector` — how unusual an order is, in [0, 1], with the features that
  made it so (``learn_one`` / ``score_one``).
"""

from detectors.anomaly import OrderAnomalyDetector
from detectors.late_payment import LatePaymentModel

__all__ = ["LatePaymentModel", "OrderAnomalyDetector"]
