# kubespand container image: a KubeSpan node as a sidecar or a host-network container.
#
#   podman build --pull=never -t kubespand .        (or: docker build -t kubespand .)
#   podman run --cap-add NET_ADMIN --device /dev/net/tun -v kubespand-state:/var/lib/kubespand \
#     -v ./config.yaml:/etc/kubespand/config.yaml:ro kubespand
#
# Behind an intercepting (corporate) HTTPS proxy, hand the build the host's CA bundle so npm trusts it:
#   podman build --secret id=extra_ca,src=/etc/ssl/certs/ca-certificates.crt -t kubespand .
# The secret is mounted only for the `npm ci` step and never stored in a layer.

# ---- build: TypeScript and the N-API addon (compilers stay in this stage)
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN --mount=type=secret,id=extra_ca \
    if [ -s /run/secrets/extra_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/extra_ca; fi; \
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
COPY tsconfig.json binding.gyp ./
COPY packaging/container/tsconfig.image.json ./packaging/container/
COPY native ./native
COPY proto ./proto
COPY src ./src
COPY bin ./bin
# node-gyp builds against the headers that ship with node in /usr/local/include/node (no download);
# tsc compiles src/ only (no tests or benches), then dev dependencies go
RUN npx node-gyp rebuild --silent --nodedir=/usr/local \
 && npx tsc -p packaging/container/tsconfig.image.json \
 && npm prune --omit=dev --no-audit --no-fund --loglevel=error \
 && node bin/kubespand version

# ---- runtime: node, iproute2, nftables and libsodium (opened by the data-path addon when present);
# no compilers, no npm cache
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 nftables ca-certificates libsodium23 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/kubespand
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist ./dist
COPY --from=build /src/proto ./proto
COPY --from=build /src/build/Release/*.node ./build/Release/
RUN ln -s /opt/kubespand/bin/kubespand /usr/local/bin/kubespand \
 && mkdir -p /etc/kubespand /var/lib/kubespand /run/kubespand \
 && chmod 0700 /var/lib/kubespand
VOLUME ["/var/lib/kubespand"]
ENTRYPOINT ["kubespand"]
CMD ["run", "--config", "/etc/kubespand/config.yaml"]
