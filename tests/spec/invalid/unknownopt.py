from ray import serve


@serve.deployment(num_replica=2)
class Counter:
    def __call__(self, request):
        return 1


app = Counter.bind()
