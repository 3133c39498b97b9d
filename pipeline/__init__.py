"""riskstream's functional core: validation, per-user state and windows, scoring, limit policy.

Nothing in this package talks to Kafka. The live worker (``agents``), file replays and the
evaluation all call the same functions, so what is unit-tested here is what runs in production.
"""
