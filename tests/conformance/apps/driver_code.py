"""A Serve file as people write it to try locally: ray.init(), serve.start() and serve.run() at
module level, and a __main__ block. Inside a replica they do nothing."""

import ray
from ray import serve

ray.init(ignore_reinit_error=True)
serve.start(http_options={"host": "0.0.0.0"})


@serve.deployment
class Local:
    def __call__(self) -> dict:
        return {"ray_initialized": ray.is_initialized()}


app = Local.bind()
serve.run(app, name="driver_code", route_prefix="/driver_code")

if __name__ == "__main__":
    import time

    while True:
        time.sleep(1)
