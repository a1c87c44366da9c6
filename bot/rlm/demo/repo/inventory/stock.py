class Stock:
    def __init__(self) -> None:
        self.items: dict[str, int] = {}

    def add(self, sku: str, quantity: int) -> None:
        # TODO: reject negative quantities
        self.items[sku] = self.items.get(sku, 0) + quantity

    def remove(self, sku: str, quantity: int) -> None:
        # TODO: raise a clear error when there is not enough stock instead of going negative
        self.items[sku] = self.items.get(sku, 0) - quantity
