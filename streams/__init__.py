"""Streams: event contracts, topics, the Faust app and its agents, the embedded stack and the CLI.

This package is the only one that talks to Kafka or Redis. It turns raw messages into typed
events, keeps each customer's state, hands a typed context to :mod:`rules` (and later
:mod:`detectors`) and publishes what they decide.
"""
