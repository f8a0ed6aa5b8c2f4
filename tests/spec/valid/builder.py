from ray import serve


@serve.deployment
class Counter:
    def __call__(self, request):
        return 1


def app_builder(args):
    return Counter.bind()
