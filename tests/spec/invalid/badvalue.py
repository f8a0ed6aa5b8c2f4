from ray import serve


@serve.deployment(
    num_replicas=0,
)
class Counter:
    def __call__(self, request):
        return 1


app = Counter.bind()
