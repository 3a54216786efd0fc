# Rubato's container image: the static rubato binary and CA certificates,
# FROM scratch, running as 10001:10001 with no shell. Probe it with an HTTP
# GET on :3200/ready (Kubernetes httpGet), which needs nothing in the image.
#
# With an image registry (golang and Debian images are pulled):
#
#   docker build -t rubato:dev .
#
# Without one, scripts/rubato-image.sh builds the binary and the root
# filesystem on the host and runs only the final stage below (the part
# after "FROM scratch"), so both paths make the same image. Keep the final
# stage's COPY lines reading from /out/ of the build stage: the script
# maps them onto its own build context.

ARG GO_VERSION=1.26
FROM golang:${GO_VERSION}-bookworm AS build
ARG VERSION=dev
# The golang image ships Debian's ca-certificates; install it explicitly so
# a slimmer base keeps working.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/rubatodb/rubato/cmd/rubato/app.Version=${VERSION}" -o /out/rootfs/rubato ./cmd/rubato
RUN mkdir -p /out/rootfs/etc/ssl/certs /out/rootfs/tmp /out/data \
	&& cp /etc/ssl/certs/ca-certificates.crt /out/rootfs/etc/ssl/certs/ \
	&& chmod 1777 /out/rootfs/tmp \
	&& echo 'rubato:x:10001:10001:rubato:/var/rubato:/nonexistent' >/out/rootfs/etc/passwd \
	&& echo 'rubato:x:10001:' >/out/rootfs/etc/group

FROM scratch
COPY --from=build /out/rootfs/ /
COPY --from=build --chown=10001:10001 /out/data/ /var/rubato/
USER 10001:10001
WORKDIR /var/rubato
# HTTP (query API, /ready, /metrics), gRPC, OTLP gRPC, OTLP HTTP.
EXPOSE 3200 9095 4317 4318
ENTRYPOINT ["/rubato"]
