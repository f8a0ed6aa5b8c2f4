from ray import serve


@serve.deployment
class Sample:
    def __call__(self, request):
        return "sample"


app = Sample.bind()
