from ray import serve


@serve.deployment
class Plain:
    def __call__(self, request):
        return 1


@serve.deployment(user_config={"k": 1})
def handler(request):
    return 2


app = Plain.bind()
fn_app = handler.bind()
