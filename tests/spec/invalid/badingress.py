from ray import serve


class Handlers:
    def index(self):
        return "hi"


def make_app(prefix):
    return None


@serve.deployment
@serve.ingress(Handlers)
class PlainClassIngress:
    def get(self):
        return 1


@serve.deployment
@serve.ingress(make_app)
class BuilderWithArgsIngress:
    pass


@serve.deployment
@serve.ingress(42)
class LiteralIngress:
    pass


app_plain = PlainClassIngress.bind()
app_builder = BuilderWithArgsIngress.bind()
app_literal = LiteralIngress.bind()
