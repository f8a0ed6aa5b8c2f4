"""Options computed by code at import: only running it says what they are."""

import os

from ray import serve


def make_options():
    return {"num_replicas": 2, "user_config": {"price": 7}}


AUTOSCALE = dict(min_replicas=1, max_replicas=int(os.environ.get("MAX_REPLICAS", "4")))


@serve.deployment(**make_options())
class Stand:
    def reconfigure(self, config):
        self.price = config["price"]

    def __call__(self, request):
        return self.price


@serve.deployment(autoscaling_config=AUTOSCALE)
class Market:
    def __init__(self, stand):
        self.stand = stand


app = Market.bind(Stand.bind())
