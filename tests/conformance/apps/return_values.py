"""What a handler returns becomes the response: str, bytes, dict, list, None."""

from ray import serve


@serve.deployment
class Returns:
    async def __call__(self, request):
        kind = request.query_params.get("kind")
        if kind == "str":
            return "plain text"
        if kind == "bytes":
            return b"\x00\x01raw"
        if kind == "list":
            return [1, "two", {"three": 3}]
        if kind == "none":
            return None
        return {"kind": kind, "nested": {"ok": True}}


app = Returns.bind()
