"""HTTPException status codes and details, and an unhandled error as a 500."""

from fastapi import FastAPI, HTTPException
from ray import serve

api = FastAPI()


@serve.deployment
@serve.ingress(api)
class Guard:
    @api.get("/items/{name}")
    def item(self, name: str) -> dict:
        if name == "missing":
            raise HTTPException(status_code=404, detail=f"{name} not found")
        if name == "teapot":
            raise HTTPException(status_code=418, detail="I'm a teapot", headers={"x-why": "tea"})
        if name == "crash":
            raise RuntimeError("boom")
        return {"name": name}


app = Guard.bind()
