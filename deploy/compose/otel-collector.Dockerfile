# syntax=docker/dockerfile:1
# The OpenTelemetry Collector (contrib) with a static busybox beside it, only so that docker-compose.yml's
# healthcheck can ask the health_check extension (:13133): the collector's own image has no shell and no HTTP
# client. Versions: COLLECTOR_CONTRIB_IMAGE and BUSYBOX_IMAGE in .env.
ARG COLLECTOR_CONTRIB_IMAGE=otel/opentelemetry-collector-contrib:0.157.0
ARG BUSYBOX_IMAGE=busybox:1.37.0-musl

FROM ${BUSYBOX_IMAGE} AS probe

FROM ${COLLECTOR_CONTRIB_IMAGE}
COPY --from=probe /bin/busybox /probe/busybox
