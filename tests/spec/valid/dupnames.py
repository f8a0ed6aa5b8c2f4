from ray import serve


@serve.deployment
class Left:
    pass


@serve.deployment
class Right:
    pass


@serve.deployment
class Top:
    def __init__(self, a, b):
        self.parts = (a, b)


app = Top.bind(Left.options(name="Part").bind(), Right.options(name="Part").bind())
