"""Streaming between deployments: `handle.options(stream=True)` gives a generator to iterate,
async in an async handler and sync in a sync one; the HTTP response streams it on."""

from ray import serve
from starlette.responses import StreamingResponse


@serve.deployment
class Tokens:
    def words(self, text: str):
        yield from text.split()

    async def letters(self, word: str):
        for letter in word:
            yield letter


@serve.deployment
class Reader:
    def __init__(self, tokens):
        self.tokens = tokens.options(stream=True)

    async def relay(self, text: str):
        async for word in self.tokens.words.remote(text):
            yield word.upper() + "\n"

    async def __call__(self, request):
        text = request.query_params["text"]
        if request.query_params.get("mode") == "collect":
            letters = [x async for x in self.tokens.letters.remote(text)]
            return {"letters": letters}
        return StreamingResponse(self.relay(text), media_type="text/plain")

    def count_sync(self, text: str) -> int:
        return sum(1 for _ in self.tokens.words.remote(text))


@serve.deployment
class SyncReader:
    def __init__(self, tokens):
        self.tokens = tokens

    def __call__(self, request) -> dict:
        gen = self.tokens.options(stream=True).words.remote(request.query_params["text"])
        return {"words": list(gen)}


app = Reader.bind(Tokens.bind())
sync_app = SyncReader.bind(Tokens.bind())
