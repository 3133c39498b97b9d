"""What analysts and operators use: one user's line, the alerts, decisions, the policy."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson

from agents.cli.base import ENV, bootstrap_option, cluster, main, settings_from

__all__: list[str] = []


def _state_options(function: Any) -> Any:
    for option in reversed((
        click.option("--source", type=click.Choice(["auto", "local", "changelog"]),
                     default="auto", help="local: this host's partition store; changelog: the "
                     "group's changelog topic; auto: the local store, else the changelog."),
        click.option("--state-dir", type=click.Path(path_type=Path), envvar=f"{ENV}STATE_DIR",
                     show_envvar=True, help="Where partition stores live [default: var/state]."),
        click.option("--group", "group_id", envvar=f"{ENV}GROUP_ID", show_envvar=True,
                     help="Consumer group [default: riskstream]."),
    )):
        function = option(function)
    return function


@main.command()
@bootstrap_option
@click.argument("user_id")
@_state_options
@click.option("--recent", default=5, show_default=True, type=click.IntRange(min=0),
              help="Latest alerts and adjustments to show (read from the output topics).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def user(bootstrap_servers: str | None, user_id: str, source: str, state_dir: Path | None,
         group_id: str | None, recent: int, as_json: bool) -> None:
    """Look up one user: limit, balance, available credit, holds, repayment record, default
    risk, and the latest alerts, limit adjustments and refused records (a decision that could
    not apply, say)."""
    from agents.lookup import find_user, recent_outputs
    from agents.monitor import render
    from agents.topics import DEAD_LETTER
    from pipeline.outputs import ALERTS, LIMIT_ADJUSTMENTS
    from pipeline.state.user import describe_user

    settings = cluster(bootstrap_servers=bootstrap_servers, state_dir=state_dir,
                       group_id=group_id)
    found = find_user(settings, user_id, source)  # type: ignore[arg-type]
    streams = (ALERTS, LIMIT_ADJUSTMENTS, DEAD_LETTER)
    latest = (recent_outputs(settings, user_id, streams, recent)
              if recent else {stream: [] for stream in streams})
    if found.user is None and not any(latest.values()):
        raise click.ClickException(
            f"no user {user_id}: no stored state (partition {found.partition} of "
            f"{settings.partitions}, group {settings.group_id}, source {source}) and no alert "
            "or adjustment about them")
    state = describe_user(found.user) if found.user is not None else None
    if as_json:
        click.echo(orjson.dumps({
            "user_id": user_id, "partition": found.partition, "source": found.found_in,
            "state": state, "recent_alerts": latest[ALERTS],
            "recent_adjustments": latest[LIMIT_ADJUSTMENTS],
            "recent_dead_letters": latest[DEAD_LETTER],
        }).decode())
        return
    click.echo(f"user {user_id}  (partition {found.partition}, "
               f"{found.found_in or 'no stored state'})")
    if state is not None:
        for line in _describe(state, settings.risk_config().currency):
            click.echo(line)
    for title, stream in (("alerts", ALERTS), ("limit adjustments", LIMIT_ADJUSTMENTS)):
        records = latest[stream]
        click.echo(f"latest {title}: {len(records) or 'none'}")
        for record in records:
            click.echo("  " + render(stream, record).replace("\n", "\n  "))
    refused = latest[DEAD_LETTER]
    if refused:
        click.echo(f"latest records refused (dead letters): {len(refused)}")
        for record in refused:
            click.echo(f"  {record['error']}: {record['reason']}")


def _describe(state: dict[str, Any], currency: str) -> list[str]:
    from pipeline.money import format_minor

    def money(amount: int | None) -> str:
        return "-" if amount is None else format_minor(amount, currency)

    lines = [f"limit {money(state['limit_minor'])}   balance {money(state['balance_minor'])}   "
             f"available {money(state['available_minor'])}"]
    hold = state["hold"]
    if hold is None:
        lines.append("hold: none")
    else:
        if hold["expires_at"] and not hold["confirmed"]:
            until = f" until {hold['expires_at']}"
        elif hold["kind"] == "risk_freeze" and not hold["confirmed"]:
            until = " until a later statement scores lower, or a person lifts it"
        else:
            until = " until a person lifts it"
        lines.append(f"hold: {hold['kind']} of {money(hold['amount_minor'])}{until} "
                     f"[{hold['adjustment_id']}]" + (f" after alert {hold['alert_id']}"
                                                     if hold["alert_id"] else ""))
    repayments = state["repayments"]
    lines.append(f"repayments: {repayments['on_time']} on time, {repayments['late']} late; "
                 f"defaulted: {'yes' if state['defaulted'] else 'no'}; fraud confirmed: "
                 f"{'yes' if state['fraud_confirmed'] else 'no'}")
    credit = state["credit"]
    if credit is None:
        lines.append("default risk: no statement yet")
    else:
        risk = credit["default_risk"]
        lines.append(f"default risk: {'not scored yet' if risk is None else f'{risk:.3f}'} "
                     f"({credit['statements']} statements, last bill "
                     f"{money(credit['last_bill_minor'])}, {credit['past_due_cycles']} cycles "
                     "past due)")
    purchases = state["purchases"]
    lines.append(f"purchases in the windows: {purchases['held']} (last {purchases['last']}), "
                 f"typical {money(purchases['typical_amount_minor'])}; last alert "
                 f"{state['last_alert'] or '-'}, last raise {state['last_raise'] or '-'}")
    return lines


@main.command()
@bootstrap_option
@click.option("--user", help="Only this user.")
@click.option("--min-severity", type=click.Choice(["low", "medium", "high"]),
              help="Only alerts of at least this severity, and the adjustments they caused; "
              "freezes and confirmed holds count as high.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--from-beginning/--from-now", default=True, help="Where to start reading.")
@click.option("--idle-timeout", type=float, help="Exit after this many seconds without output.")
def alerts(bootstrap_servers: str | None, user: str | None, min_severity: str | None,
           as_json: bool, from_beginning: bool, idle_timeout: float | None) -> None:
    """Follow alerts and limit adjustments (all kinds), in event-time order: what the topics
    hold when it starts is read and sorted first, then each batch as it arrives."""
    from agents.monitor import follow, matches, render

    keep = matches(user, min_severity)
    settings = cluster(bootstrap_servers=bootstrap_servers)
    try:
        for stream, record in follow(
            settings, from_beginning=from_beginning,
            idle_timeout_s=idle_timeout,
        ):
            if not keep(stream, record):
                continue
            if as_json:
                click.echo(orjson.dumps({"stream": stream, **record}).decode())
            else:
                click.echo(render(stream, record))
    except KeyboardInterrupt:
        pass


@main.group()
def decide() -> None:
    """Act on a user's line: release a cut, confirm fraud, freeze, unfreeze, set a limit.

    Each decision goes to the decisions topic; the worker applies it in event time and writes
    the limit adjustment, or a dead letter saying why it could not (unknown user, nothing to
    release). Check the result with `riskstream user USER_ID`.
    """


def _decision_options(function: Any) -> Any:
    for option in reversed((
        bootstrap_option,
        click.argument("user_id"),
        click.option("--reason", required=True, help="Why, in words (goes into the audit)."),
        click.option("--by", "decided_by", required=True, envvar=f"{ENV}ANALYST",
                     show_envvar=True, help="Who decides (your analyst id)."),
        click.option("--at", "at", help="Event time of the decision, RFC 3339 (default: now). "
                     "Give the stream's time when deciding on a replayed history."),
        click.option("--id", "event_id", help="Decision id (default: a new one); the same id "
                     "twice is applied once."),
    )):
        function = option(function)
    return function


def _decide(action: str, bootstrap_servers: str | None, user_id: str, reason: str,
            decided_by: str, at: str | None, event_id: str | None,
            limit: str | None = None) -> None:
    from agents.decide import decision_record, send_decision
    from pipeline.exceptions import InvalidEvent
    from pipeline.money import to_minor

    settings = settings_from(bootstrap_servers=bootstrap_servers)
    when = at or datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    currency = settings.risk_config().currency if limit is not None else None
    try:
        limit_minor = to_minor(limit, currency) if limit is not None and currency else None
    except ArithmeticError:
        raise click.BadParameter(f"{limit!r} is not an amount", param_hint="LIMIT") from None
    try:
        record = decision_record(action, user_id, decided_by, reason, when, event_id=event_id,
                                 limit_minor=limit_minor, currency=currency)
    except InvalidEvent as error:
        raise click.ClickException(f"not sent: {error.reason}") from None
    settings = cluster(bootstrap_servers=bootstrap_servers)
    topic, partition, offset = send_decision(settings, record)
    click.echo(f"decision {record['event_id']} ({action} user {user_id}) written to {topic} "
               f"partition {partition} offset {offset}; see `riskstream user {user_id}`")


@decide.command("release")
@_decision_options
def decide_release(**options: Any) -> None:
    """Lift a temporary cut (an alert's hold) before it expires."""
    _decide("release", **options)


@decide.command("confirm-fraud")
@_decision_options
def decide_confirm_fraud(**options: Any) -> None:
    """Confirm fraud: the line's hold stays until a person lifts it (or the line is frozen)."""
    _decide("confirm_fraud", **options)


@decide.command("freeze")
@_decision_options
def decide_freeze(**options: Any) -> None:
    """Freeze the line: no available credit until unfrozen."""
    _decide("freeze", **options)


@decide.command("unfreeze")
@_decision_options
def decide_unfreeze(**options: Any) -> None:
    """Lift a freeze (a person's, a confirmed fraud's or default's, or a default-risk one)."""
    _decide("unfreeze", **options)


@decide.command("set-limit")
@_decision_options
@click.argument("limit")
def decide_set_limit(**options: Any) -> None:
    """Set the limit to LIMIT, in major units of the line's currency (e.g. 8000.00)."""
    _decide("set_limit", **options)


@main.command()
@click.option("--file", "policy_file", type=click.Path(dir_okay=False, path_type=Path),
              envvar=f"{ENV}POLICY_FILE", show_envvar=True,
              help="Policy file to check and show [default: none, the defaults].")
@click.option("--digest", is_flag=True, help="Print only the digest.")
def policy(policy_file: Path | None, digest: bool) -> None:
    """Check and print the active risk policy (the file, with RISKSTREAM_* overrides) as a
    policy file, each key with its meaning; the digest is what alerts and adjustments carry."""
    from pipeline.policy_file import policy_digest, render_policy

    config = settings_from(policy_file=policy_file).risk_config()
    click.echo(policy_digest(config) if digest else render_policy(config), nl=digest)
