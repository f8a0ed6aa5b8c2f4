from ray import serve

REPLICAS = 2


@serve.deployment(num_replicas=REPLICAS)
class Counter:
    def __call__(self, request):
        return 1


app = Counter.bind()
