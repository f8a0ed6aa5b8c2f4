import ray.data
from ray import serve


@serve.deployment
class Reader:
    def __call__(self) -> int:
        return ray.data.range(3).count()


app = Reader.bind()
