from .stock import Stock


def summary(stock: Stock) -> str:
    # TODO: sort items by SKU so the report is stable
    return "\n".join(f"{sku}: {qty}" for sku, qty in stock.items.items())
