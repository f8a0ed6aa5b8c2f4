"""FastAPI with pydantic bodies, a response model that filters fields, and validation errors."""

from fastapi import FastAPI
from pydantic import BaseModel
from ray import serve

api = FastAPI()


class Order(BaseModel):
    item: str
    quantity: int
    note: str = ""


class Receipt(BaseModel):
    item: str
    total: float


@serve.deployment
@serve.ingress(api)
class Shop:
    def __init__(self, unit_price: float):
        self.unit_price = unit_price

    @api.post("/orders", response_model=Receipt)
    async def order(self, order: Order):
        return {"item": order.item, "total": order.quantity * self.unit_price, "secret": "x"}


app = Shop.bind(2.5)
