import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "vendor"))

import vendored_lib  # found through the path the module set itself
from ray import serve


@serve.deployment
class Uses:
    def __call__(self, request):
        return vendored_lib.VERSION


app = Uses.bind()
