from ray import serve


@serve.deployment
class Model:
    def __call__(self, request):
        return "model"


@serve.deployment
class Front:
    def __init__(self, model):
        self.model = model
        self.greeting = "?"

    def reconfigure(self, config):
        self.greeting = config["greeting"]

    def __call__(self, request):
        return self.greeting


app = Front.bind(Model.bind())
