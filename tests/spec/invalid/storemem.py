from ray import serve


@serve.deployment(ray_actor_options={"num_cpus": 1, "object_store_memory": 100})
class Cache:
    pass


app = Cache.bind()
