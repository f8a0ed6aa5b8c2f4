"""Options the way Ray's own release workloads write them: in module-level constants."""

from ray import serve

_AUTOSCALE = {
    "min_replicas": 1,
    "initial_replicas": 2,
    "max_replicas": 5,
    "target_ongoing_requests": 4,
}
_ACTOR = {"num_cpus": 0.25}
OPTS = dict(max_ongoing_requests=16, graceful_shutdown_timeout_s=3)


@serve.deployment(autoscaling_config=_AUTOSCALE, ray_actor_options=_ACTOR, **OPTS)
class Scorer:
    def __call__(self, request):
        return 1


@serve.deployment(ray_actor_options=_ACTOR)
class Gateway:
    def __init__(self, scorer):
        self.scorer = scorer

    def __call__(self, request):
        return self.scorer.remote(request).result()


app = Gateway.bind(Scorer.bind())
