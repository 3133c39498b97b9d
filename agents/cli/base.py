"""The ``riskstream`` group, its shared options, and how errors reach the user (one line)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from agents.settings import Settings

__all__ = ["ENV", "bootstrap_option", "cluster", "history_options", "history_options_from", "main",
           "settings_from"]

ENV = "RISKSTREAM_"


def settings_from(**overrides: Any) -> Settings:
    """Settings from the environment, with the options given on the command line on top."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})


def cluster(**overrides: Any) -> Settings:
    """Settings for a command that talks to the brokers, which must be reachable: a wrong or
    absent address fails within seconds in one line, not after the clients' retries."""
    from agents.kafka import check_reachable

    settings = settings_from(**overrides)
    check_reachable(settings)
    return settings


def bootstrap_option(function: Any) -> Any:
    return click.option(
        "--bootstrap", "bootstrap_servers", envvar=f"{ENV}BOOTSTRAP_SERVERS", show_envvar=True,
        help="Kafka bootstrap address(es), comma-separated [default: 127.0.0.1:9092].",
    )(function)


def history_options(function: Any) -> Any:
    """How history files are read: the options of ``replay`` and ``train``."""
    from pipeline.adapters import FORMATS
    from pipeline.events import EVENT_TYPES

    for option in reversed((
        click.option("--format", "input_format", type=click.Choice(FORMATS),
                     default="riskstream",
                     help="riskstream: the topics' contract (any columns via --map); fdh: the "
                     "Fraud Detection Handbook's transactions; uci-taiwan: the UCI credit-card "
                     "clients."),
        click.option("--map", "column_map", metavar="FIELD=COLUMN,...",
                     help="Contract fields from other column names, e.g. user_id=CUSTOMER_ID,"
                     "amount=TX_AMOUNT (amount/balance/credit_limit in major units, exact)."),
        click.option("--type", "event_type", type=click.Choice(list(EVENT_TYPES)),
                     help="Event type of records that carry no 'type' field."),
        click.option("--currency", help="Currency of records that carry none (fdh: CNY, "
                     "uci-taiwan: TWD)."),
        click.option("--timezone", help="Offset given to timestamps without one (UTC, "
                     "+08:00)."),
        click.option("--label-delay-days", type=float, default=7.0,
                     help="fdh: a fraud's label is known this long after the purchase."),
        click.option("--cohort-size", type=click.IntRange(min=1),
                     help="uci-taiwan: clients join in monthly cohorts of N (prequential "
                     "learning); default: all on the table's own 2005 calendar."),
    )):
        function = option(function)
    return function


def history_options_from(input_format: str, column_map: str | None, event_type: str | None,
                         currency: str | None, timezone: str | None, label_delay_days: float,
                         cohort_size: int | None) -> Any:
    """The ``HistoryOptions`` the :func:`history_options` give."""
    from pipeline.adapters import ColumnMapping
    from pipeline.history import HistoryOptions
    from pipeline.timeutil import DAY

    constants = {"currency": currency} if currency and input_format == "riskstream" else {}
    try:
        mapping = (
            ColumnMapping.parse(column_map or "", constants, timezone)
            if column_map or constants or timezone else None
        )
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--map") from None
    return HistoryOptions(
        format=input_format, event_type=event_type, mapping=mapping,
        label_delay=round(label_delay_days * DAY), currency=currency, cohort_size=cohort_size,
    )


class _Commands(click.Group):
    """Turns the errors a user can cause (a broker not there, wrong credentials, a bad file)
    into one clear line and exit status 1 instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from aiokafka.errors import KafkaError as AIOKafkaError
        from kafka.errors import KafkaError
        from pydantic import ValidationError

        from pipeline.exceptions import PolicyError, RiskstreamError

        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as cat does
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except ValidationError as error:
            raise click.ClickException(settings_error(error)) from None
        except PolicyError as error:
            raise click.ClickException(str(error)) from None
        except (KafkaError, AIOKafkaError, RiskstreamError, OSError) as error:
            raise click.ClickException(f"{type(error).__name__}: {error}") from None


def settings_error(error: Any) -> str:
    """A settings error as one line naming each variable, its value and the form expected."""
    problems = []
    for problem in error.errors():
        name = f"{ENV}{str(problem['loc'][0]).upper()}" if problem["loc"] else "settings"
        problems.append(f"{name}={problem.get('input')!s}: {problem['msg']}")
    return "invalid setting: " + "; ".join(problems)


@click.group(cls=_Commands,
             context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--log-level", envvar=f"{ENV}LOG_LEVEL", show_envvar=True, default="INFO",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), help="Log verbosity.")
def main(log_level: str) -> None:
    """riskstream: real-time credit-risk and fraud control on Kafka.

    All connection and security settings (SASL, TLS) come from RISKSTREAM_* variables; see
    agents/settings.py or deploy/riskstream.env.example for the full list.
    """
    logging.basicConfig(
        level=log_level, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(log_level)))
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLevelName(log_level)))
    # kafka-python times its own I/O tasks and warns when one ran over 0.1 s: noise to a user.
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
