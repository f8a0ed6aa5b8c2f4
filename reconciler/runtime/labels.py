"""Label keys on every container, network and volume the reconciler creates.

`docker ps --filter label=io.serve-reconciler.owner=NAME` lists one instance's containers.
"""

PREFIX = "io.serve-reconciler"
MANAGED = f"{PREFIX}.managed"  # always "true"
OWNER = f"{PREFIX}.owner"  # the reconciler instance name
# "replica", "ingress" or "sandbox" (also "network"); on images "app-image" or "deps-image"
ROLE = f"{PREFIX}.role"
APP = f"{PREFIX}.app"
DEPLOYMENT = f"{PREFIX}.deployment"
REPLICA = f"{PREFIX}.replica"  # the replica index, as a decimal string
VERSION = f"{PREFIX}.version"  # DeploymentSpec.version
# How a single host's replica reaches the ingress's router: "bridge" (Docker's DNS names the
# ingress container; absent on replicas made before the label) or "host" (its /etc/hosts names
# the network's gateway). A replica made for the other is replaced like one of an old version.
ROUTER = f"{PREFIX}.router"
USER_CONFIG = f"{PREFIX}.user-config"  # user_config hash the replica was created with
HEALTH_CHECK_PERIOD = f"{PREFIX}.health-check-period-s"  # the reconciler's health check of it
HEALTH_CHECK_TIMEOUT = f"{PREFIX}.health-check-timeout-s"
BASE_IMAGE = f"{PREFIX}.base-image"  # on a built image: the image ID it was built FROM
DEMAND = f"{PREFIX}.demand"  # what the replica holds on the host (admission), canonical JSON
TEST = f"{PREFIX}.test"  # set by the test suite on anything it creates outside an instance
SANDBOX_STARTED = f"{PREFIX}.sandbox-started"  # when a sandbox was made (unix time)
# Docker Swarm (runtime/swarm_*.py), on services: what changes after create lives in service
# labels (a task template change would replace the task; a service cannot be renamed).
DRAIN_DEADLINE = f"{PREFIX}.drain-deadline"  # a drained replica's deadline (unix time)
TOKEN_ID = f"{PREFIX}.token-id"  # which control token the service was given (not the token)
INGRESS_KEY = f"{PREFIX}.ingress-key"  # the ingress configuration its tasks run
# On a single host's ingress in the host's network (runtime/ingress_network.py): where it was made
# to listen, "HTTP_HOST|HTTP_PORT|GATEWAY|ADMIN_PORT".
INGRESS_LISTEN = f"{PREFIX}.ingress-listen"
