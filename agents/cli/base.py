"""The ``riskstream`` group, its shared options, and how errors reach the user (one line)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from agents.settings import Settings

__all__ = ["ENV", "bootstrap_option", "cluster", "main", "settings_from"]

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
