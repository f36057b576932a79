"""Detectors: online-learning models (river-compatible, over plain dicts) that score orders
and customers, with no Kafka or Redis import.

- :class:`LatePaymentModel` — probability that an invoice is paid late or written off, with
  reason codes (``learn_one`` / ``predict_proba_one``).
"""

from detectors.late_payment import LatePaymentModel
from detectors.woe import OnlineWoE

__all__ = ["LatePaymentModel", "OnlineWoE"]
