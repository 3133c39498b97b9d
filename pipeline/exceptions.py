"""The one exception tree of the functional core."""

__all__ = ["InvalidEvent", "MisorderedHistories", "PolicyError", "RiskstreamError",
           "StateFormatError", "UnreadableSource"]


class RiskstreamError(Exception):
    """Root of every error raised on purpose by riskstream."""


class InvalidEvent(RiskstreamError):
    """An input record that cannot be applied; it goes to the dead-letter topic with ``reason``.

    ``kind`` is a short, stable machine name (``malformed-json``, ``missing-field``, ``late``, ...)
    so dead letters can be counted by cause; ``reason`` is the human-readable sentence.
    """

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


class UnreadableSource(RiskstreamError):
    """A whole input file that is not in the layout asked for (a column missing, say): no
    record of it can be read, so nothing is, rather than every record wrongly."""


class MisorderedHistories(RiskstreamError):
    """Histories to replay one after another that are not in time order, or overlap."""


class StateFormatError(RiskstreamError):
    """Stored state in a layout this release does not read (another format version, or a
    record cut short)."""


class PolicyError(RiskstreamError):
    """A policy file that cannot be used: unreadable, an unknown key, or a bad value (the
    message names the file, the section and the key)."""
