from ray import serve


@serve.deployment
class Stand:
    pass


@serve.deployment
class Till:
    pass


stand = Stand.bind()
till = Till.options(name="b-Stand").bind()
