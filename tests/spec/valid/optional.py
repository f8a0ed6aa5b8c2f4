from ray import serve

try:
    import numpy
except ImportError:  # optional: the code works without it
    numpy = None


@serve.deployment
class Summer:
    def __call__(self, request):
        return 0 if numpy is None else int(numpy.sum([1, 2]))


app = Summer.bind()
