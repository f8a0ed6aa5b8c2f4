"""The fruit stand: three stands priced by user_config, and a market that asks them.

POST a JSON body `["MANGO", 2]` to the ingress and get back the price (6 with the config in this
repository); an unknown fruit costs -1. Ray Serve 2.x code as it is: it runs unchanged under
`serve run fruit:deployment_graph` and on the reconciler's replica runtime.
"""

from ray import serve


@serve.deployment(user_config={"price": 3})
class MangoStand:
    DEFAULT_PRICE = 1

    def __init__(self):
        self.price = self.DEFAULT_PRICE

    def reconfigure(self, config: dict):
        self.price = config.get("price", self.DEFAULT_PRICE)

    def check_price(self, amount: float) -> float:
        return self.price * amount


@serve.deployment(user_config={"price": 2})
class OrangeStand:
    DEFAULT_PRICE = 0.5

    def __init__(self):
        self.price = self.DEFAULT_PRICE

    def reconfigure(self, config: dict):
        self.price = config.get("price", self.DEFAULT_PRICE)

    def check_price(self, amount: float) -> float:
        return self.price * amount


@serve.deployment(user_config={"price": 4})
class PearStand:
    DEFAULT_PRICE = 0.75

    def __init__(self):
        self.price = self.DEFAULT_PRICE

    def reconfigure(self, config: dict):
        self.price = config.get("price", self.DEFAULT_PRICE)

    def check_price(self, amount: float) -> float:
        return self.price * amount


@serve.deployment(num_replicas=2)
class FruitMarket:
    def __init__(self, mango_stand, orange_stand, pear_stand):
        self.directory = {
            "MANGO": mango_stand,
            "ORANGE": orange_stand,
            "PEAR": pear_stand,
        }

    async def check_price(self, fruit: str, amount: float) -> float:
        if fruit not in self.directory:
            return -1
        stand = self.directory[fruit]
        return await stand.check_price.remote(amount)

    async def __call__(self, request):
        fruit, amount = await request.json()
        return await self.check_price(fruit, amount)


deployment_graph = FruitMarket.bind(MangoStand.bind(), OrangeStand.bind(), PearStand.bind())
