"""Monitoring: Prometheus metrics (and, later, dashboards, alert rules and desk views).

It only observes: nothing here changes what is decided.
"""
