from ray import serve


@serve.deployment
class Counter:
    def __call__(self, request):
        return 1


def no_params():
    return Counter.bind()


def two_params(args, extra):
    return Counter.bind()


async def async_builder(args):
    return Counter.bind()


def keyword_only(*, args):
    return Counter.bind()
