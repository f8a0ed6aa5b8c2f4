"""`serve.get_replica_context()`: the application, deployment and replica this code runs in."""

from ray import serve


@serve.deployment
class WhoAmI:
    def __call__(self) -> dict:
        ctx = serve.get_replica_context()
        return {
            "app_name": ctx.app_name,
            "deployment": ctx.deployment,
            "replica_tag": ctx.replica_tag,
            "unique_id": ctx.replica_id.unique_id,
            "deployment_id": [
                ctx.replica_id.deployment_id.name,
                ctx.replica_id.deployment_id.app_name,
            ],
            "servable": type(ctx.servable_object).__name__,
        }


app = WhoAmI.bind()
