def apply_discount(price: float, percent: float) -> float:
    """Price after a percentage discount."""
    # TODO: clamp percent to the range 0..100 so a bad discount cannot make the price negative
    return price * (1 - percent / 100)


def with_tax(price: float, rate: float = 0.2) -> float:
    return round(price * (1 + rate), 2)
