import src_layout_pkg  # found through the application's PYTHONPATH
from ray import serve


@serve.deployment
class Src:
    def __call__(self, request):
        return src_layout_pkg.NAME


app = Src.bind()
