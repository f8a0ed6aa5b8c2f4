from ray import serve


@serve.deployment
class Model:
    def __init__(self, weight=1):
        self.weight = weight

    def __call__(self, x):
        return x * self.weight


@serve.deployment
class Chain:
    def __init__(self, first, second):
        self.steps = [first, second]


app = Chain.bind(Model.bind(2), Model.bind(3))
shared = Model.bind()
same_node = Chain.bind(shared, shared)
