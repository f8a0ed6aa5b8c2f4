from ray import serve


@serve.deployment(name="Pricer", num_replicas="auto", ray_actor_options={"num_cpus": 0.5})
class PriceList:
    def __call__(self, request):
        return 1
