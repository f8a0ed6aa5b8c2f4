"""serve_replica: runs one Serve deployment replica in a container (`python3 -m serve_replica`).

Layout inside the container (PYTHONPATH=/opt/serve):
  /opt/serve/serve_replica/   this package
  /opt/serve/ray/serve/       the `from ray import serve` shim
  /app/work/                  the user's working_dir (the cwd, first on sys.path)
  /app/py_modules/<name>/     each py_modules directory (/app/py_modules is on sys.path)

Environment (the engine sets it; `settings.Settings.from_env` reads it):
  SERVE_APP, SERVE_DEPLOYMENT, SERVE_REPLICA      application, deployment name, replica index
  SERVE_IMPORT_PATH                               "mod.sub:attr" or "mod.sub.attr"
  SERVE_ARGS                                      application args (JSON object) for app builders
  SERVE_USER_CONFIG, SERVE_USER_CONFIG_HASH       user_config as JSON ("null" = none) and its hash
  SERVE_MAX_ONGOING_REQUESTS                      user requests in flight (default 5)
  SERVE_GRACEFUL_SHUTDOWN_WAIT_LOOP_S             drain loop period (default 2)
  SERVE_GRACEFUL_SHUTDOWN_TIMEOUT_S               informational; Docker's stop timeout enforces it
  SERVE_HEALTH_CHECK_TIMEOUT_S                    timeout of one check_health() call (default 30)
  SERVE_ROUTER_URL                                http://<ingress>:8001, where handle calls go
  SERVE_HTTP_PORT                                 listen port (default 8000; tests change it)
  SERVE_STATE_DIR                                 where reconfigure persists user_config
                                                  (default /tmp/serve-state; survives a process
                                                  restart inside the same container)
  SERVE_MAX_BODY_BYTES                            largest request body (default 100 MiB)
  SERVE_SECRET_ENV_FILE                           a JSON file of secret env values, loaded
                                                  into the environment at start (kept out of
                                                  the container's Env, which inspect shows)
  SERVE_CONTROL_TOKEN_FILE                        a file holding the control token: then every
                                                  /-/ endpoint but /-/ready needs it in
                                                  X-Serve-Token (401 otherwise), and handle calls
                                                  send it (a swarm publishes the control port on
                                                  every node's network)

HTTP/1.1 on 0.0.0.0:SERVE_HTTP_PORT (asyncio, keep-alive): GET /-/ready, GET /-/healthz (runs
the user's check_health()), GET /-/state, POST /-/reconfigure, POST
/-/call/<app>/<deployment>/<method> (handle calls: pickle from inside the network, or JSON
{"args", "kwargs"} -> {"result"}); anything else is an ASGI request to the deployment (under the
`x-serve-route-prefix` the ingress sets, as ASGI root_path). If
the import, `__init__` or the first `reconfigure` raises, the traceback goes to stderr (last
line `ExcType: message`) and the process exits 1. SIGTERM drains, calls `__del__`, exits 0.
`python3 -m serve_replica.describe` prints the built application as JSON (see describe.py).

Modules, one concern each (standard library only at import; starlette/FastAPI only in web.py):
  protocol   HTTP/1.1 connections          asgi       scope, receive/send, lifespan
  server     control endpoints, dispatch   calls      the callee side of handle calls
  userapp    a deployment as an ASGI app   responses  return values -> ASGI messages
  request    the stdlib Request stand-in   web        starlette/FastAPI, lazily
  handle     DeploymentHandle & responses  transport  the router client (kept-alive)
  wire       the pickle format of calls    batching   @serve.batch
  multiplex  @serve.multiplexed            context    replica and request context
  logs       Serve's log format            driver     serve.run & co. as no-ops
  api        @serve.deployment, ingress    graph      the bound graph, names, builders
  replica    one replica's state           loop       the event loop and sync workers
  startup    path, secrets, import         describe   describe mode
  settings   the environment               sync       the reconfigure writer lock
"""
