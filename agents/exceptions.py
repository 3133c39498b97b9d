"""Errors of the shell, under the project's one root exception."""

from pipeline.exceptions import RiskstreamError

__all__ = ["BrokerError", "ConfigurationError", "EmptyTestWeekError", "RiskstreamError",
           "StaleStateError"]


class ConfigurationError(RiskstreamError):
    """Settings that cannot work together (e.g. input topics with different partition counts)."""


class BrokerError(RiskstreamError):
    """The broker could not be started, reached or used."""


class EmptyTestWeekError(RiskstreamError):
    """An evaluation's test week in which the history has no purchase."""


class StaleStateError(RiskstreamError):
    """Stored state whose input offsets lie beyond the end of the input topics: written
    against topics that were deleted and created again since."""
