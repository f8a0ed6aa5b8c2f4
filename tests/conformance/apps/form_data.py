"""Form bodies: urlencoded and multipart (`await request.form()`, python-multipart)."""

from ray import serve


@serve.deployment
class FormReader:
    async def __call__(self, request) -> dict:
        form = await request.form()
        fields = {}
        for key, value in form.items():
            if hasattr(value, "read"):
                content = await value.read()
                fields[key] = {"filename": value.filename, "size": len(content)}
            else:
                fields[key] = value
        return fields


app = FormReader.bind()
