# berth's container image. Build from the top of the source tree:
#
#   docker build -t berth .
#   docker run -d -p 5000:5000 -v berth-data:/var/lib/berth berth
#
# Two stages: the build stage installs the build dependencies and builds berth
# as README says (./quickstart.sh build: ./autogen.sh && ./configure && make);
# the run stage holds only the binary, the libraries it needs and a non-root
# user. Configuration: BERTH_* variables (docker run -e), or a file mounted at
# /etc/berth/berth.yaml (variables win over the file). See README, "Container
# image".
#
# The bases are build arguments so that a registry mirror or a locally made
# base can stand in for Docker Hub (tests/clients/image.sh builds from a
# debootstrapped one).
ARG BUILD_BASE=debian:bookworm
ARG RUN_BASE=debian:bookworm-slim

FROM ${BUILD_BASE} AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
# The dependencies first, alone, so that a source change does not reinstall them.
COPY quickstart.sh ./
RUN ./quickstart.sh deps
COPY . .
# Extra ./configure flags, e.g. --with-system-h2o; none = the default build.
ARG CONFIGURE_FLAGS=""
RUN CONFIGURE_FLAGS="${CONFIGURE_FLAGS}" ./quickstart.sh build \
    && strip berth \
    && ./berth version

FROM ${RUN_BASE}
ARG CONFIGURE_FLAGS=""
# The shared libraries the binary links: the default build has h2o linked in
# statically (berth's patched build), --with-system-h2o needs Debian's
# libh2o-evloop; libc, libcrypt and zlib are in every Debian base. The ldd
# check below fails the build if this list falls behind the binary.
# ca-certificates: the trust store (OpenSSL's default paths) for https://
# webhook endpoints.
RUN case " ${CONFIGURE_FLAGS} " in *" --with-system-h2o "*) h2o=libh2o-evloop0.13 ;; *) h2o= ;; esac \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libssl3 libyaml-0-2 liblmdb0 libjansson4 ca-certificates $h2o \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10000 berth \
    && useradd --system --uid 10000 --gid berth --home-dir /var/lib/berth --no-create-home \
        --shell /usr/sbin/nologin berth \
    && mkdir -p /var/lib/berth /etc/berth \
    && chown berth:berth /var/lib/berth \
    && chmod 0750 /var/lib/berth
COPY --from=build /src/berth /usr/local/bin/berth
COPY --from=build /src/docker/healthcheck.sh /usr/local/bin/berth-healthcheck
# Every key at its default, as make install puts it in place; mount your own
# over it.
COPY --from=build /src/config/berth.example.yaml /etc/berth/berth.yaml
RUN if ldd /usr/local/bin/berth | grep 'not found'; then exit 1; fi \
    && /usr/local/bin/berth version

# The store is the volume. health.on_main answers /readyz (and /healthz) on the
# main listener without authentication, for the HEALTHCHECK and for
# orchestrators' probes; nothing else answers there without auth.
ENV BERTH_CONFIG=/etc/berth/berth.yaml \
    BERTH_STORAGE_ROOT=/var/lib/berth \
    BERTH_HEALTH_ON_MAIN=true
VOLUME /var/lib/berth
WORKDIR /var/lib/berth
# berth's default listen address, ":5000": port 5000 on every IPv4 address.
EXPOSE 5000
# Numeric, so that runAsNonRoot (Kubernetes) can verify it.
USER 10000:10000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/berth-healthcheck"]
ENTRYPOINT ["/usr/local/bin/berth"]
CMD ["serve"]
