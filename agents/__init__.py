"""riskstream's thin shell: the Faust app, Kafka clients, the embedded broker and the CLI.

Everything here moves bytes between topics and the functional core in ``pipeline``.
"""
