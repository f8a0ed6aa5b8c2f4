"""Application builders, as KubeRay's samples and Ray's builder tests write them."""

from ray import serve


@serve.deployment
class Greeter:
    def __init__(self, greeting):
        self.greeting = greeting

    def reconfigure(self, config):
        self.greeting = config.get("greeting", self.greeting)

    def __call__(self, request):
        return self.greeting


def build_app(args):
    replicas = int(args.get("replicas", 1))
    return Greeter.options(num_replicas=replicas).bind(args.get("greeting", "hello"))
