# The reconciler's own image. Built without a registry: the base is the image scripts/build-image
# makes locally (Debian bookworm with python3, git and haproxy), and the Python packages are
# installed on the host into build/site (scripts/build-reconciler-image does both).
#
#   scripts/build-reconciler-image
#   docker run -d --name reconciler --network host \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v reconciler-state:/var/lib/reconciler \
#     -e RECONCILER_REPO=https://git.example.com/you/serve-config.git \
#     serve-reconciler/reconciler:latest run
ARG BASE_IMAGE=serve-reconciler/python:bookworm
FROM ${BASE_IMAGE}

COPY build/site/ /opt/reconciler/site/
COPY schemas/ /opt/reconciler/schemas/

# A non-root user; it reaches the Docker socket through the socket's group (--group-add).
RUN echo 'reconciler:x:10001:10001:serve reconciler:/var/lib/reconciler:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'reconciler:x:10001:' >> /etc/group \
 && mkdir -p /var/lib/reconciler && chown 10001:10001 /var/lib/reconciler \
 && printf '#!/bin/sh\nexec python3 -m reconciler "$@"\n' > /usr/local/bin/reconciler \
 && chmod 755 /usr/local/bin/reconciler

ENV PYTHONPATH=/opt/reconciler/site \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/reconciler \
    RECONCILER_STATE_DIR=/var/lib/reconciler/state \
    RECONCILER_LISTEN=127.0.0.1:8265

USER 10001:10001
WORKDIR /var/lib/reconciler
ENTRYPOINT ["reconciler"]
CMD ["--help"]
