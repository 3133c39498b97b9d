"""Errors of the shell, under the project's one root exception."""

from pipeline.exceptions import RiskstreamError

__all__ = ["BrokerError", "ConfigurationError", "EmptyTestWeekError", "RiskstreamError"]


class ConfigurationError(RiskstreamError):
    """Settings that cannot work together (e.g. input topics with different partition counts)."""


class BrokerError(RiskstreamError):
    """The broker could not be started, reached or used."""


class EmptyTestWeekError(RiskstreamError):
    """An evaluation's test week in which the history has no purchase."""
