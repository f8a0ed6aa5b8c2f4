# A Serve file from before Ray 2.10: a deployment graph behind DAGDriver.
from ray import serve
from ray.serve.deployment_graph import InputNode
from ray.serve.drivers import DAGDriver


@serve.deployment
class Adder:
    def add(self, x: int) -> int:
        return x + 1


with InputNode() as number:
    total = Adder.bind().add.bind(number)

graph = DAGDriver.bind(total)
