from ray.serve import deployment as dep

from . import PriceList


@dep
class Front:
    def __init__(self, pricer):
        self.pricer = pricer


app = Front.options(route_prefix="/prices").bind(PriceList.bind())
