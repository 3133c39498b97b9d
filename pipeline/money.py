"""Money as integers of the minor unit: never a float where a limit or balance is kept."""

__all__ = ["MINOR_UNIT_EXPONENT", "format_minor", "to_minor"]

from decimal import ROUND_HALF_EVEN, Decimal

#: ISO 4217 minor-unit exponents of the currencies riskstream accepts.
MINOR_UNIT_EXPONENT: dict[str, int] = {
    "CNY": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "JPY": 0,
    "KRW": 0,
    "SGD": 2,
    "TWD": 2,
    "USD": 2,
}


def format_minor(amount_minor: int, currency: str) -> str:
    """Render an amount for people.

    >>> format_minor(123456, "CNY")
    'CNY 1,234.56'
    >>> format_minor(-5, "USD")
    'USD -0.05'
    >>> format_minor(1500, "JPY")
    'JPY 1,500'
    """
    exponent = MINOR_UNIT_EXPONENT.get(currency, 2)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**exponent)
    if exponent == 0:
        return f"{currency} {sign}{whole:,}"
    return f"{currency} {sign}{whole:,}.{fraction:0{exponent}d}"


def to_minor(amount: Decimal | str | int, currency: str) -> int:
    """Convert a decimal amount in major units to minor units, rounding half to even.

    >>> to_minor("57.16", "USD")
    5716
    >>> to_minor(Decimal("0.005"), "EUR")
    0
    """
    exponent = MINOR_UNIT_EXPONENT[currency]
    scaled = (Decimal(amount) * (10**exponent)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return int(scaled)
