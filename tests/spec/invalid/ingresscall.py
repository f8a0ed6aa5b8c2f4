from ray import serve

app = None


@serve.deployment
@serve.ingress(app)
class Api:
    def __call__(self, request):
        return 1


@serve.ingress(app)
@serve.deployment
class Upside:
    pass


graph = Api.bind()
upside = Upside.bind()
