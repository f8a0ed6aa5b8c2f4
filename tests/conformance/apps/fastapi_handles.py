"""FastAPI ingress composed with other deployments through handles (await in async routes,
.result() in a sync route)."""

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

api = FastAPI()


@serve.deployment
class Translator:
    def translate(self, word: str) -> str:
        return {"hello": "bonjour", "cat": "chat"}.get(word, "?")


@serve.deployment
@serve.ingress(api)
class Gateway:
    def __init__(self, translator: DeploymentHandle):
        self.translator = translator

    @api.get("/translate/{word}")
    async def translate(self, word: str) -> dict:
        french = await self.translator.translate.remote(word)
        return {"en": word, "fr": french}

    @api.get("/sync/{word}")
    def translate_sync(self, word: str) -> dict:
        return {"fr": self.translator.translate.remote(word).result()}


app = Gateway.bind(Translator.bind())
