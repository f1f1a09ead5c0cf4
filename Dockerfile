# syntax=docker/dockerfile:1
# tokengate: Envoy ext_authz service. Multi-stage: compile TypeScript with dev dependencies,
# ship only dist/, proto/ and production dependencies, run as the non-root `node` user.
#
#   docker build -t tokengate:0.1.0 .                        # the production image (last stage)
#   docker run --rm -v "$PWD/tokengate.yaml:/etc/tokengate/tokengate.yaml:ro" tokengate:0.1.0
#   docker build --target demo -t tokengate-demo:local .     # the compose demo's fake IdP and echo upstreams
#
# The production image holds no demo code: the demo token server (a fake IdP with an
# unauthenticated /control endpoint) lives in demo/, compiles to dist-demo/ and ships only in
# the `demo` target that docker-compose.yml builds for its token-server and echo services.
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# .dockerignore narrows this to the sources (tsconfig*, src/, demo/, proto/), never node_modules.
COPY . .
# proto/ holds tokengate's own .proto files; make sure the runtime COPY finds it either way.
RUN mkdir -p proto && npm run build && npm run build:demo

# Production dependencies only, shared by both images below.
FROM ${NODE_IMAGE} AS deps
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# DEMO ONLY: the fake IdP and the echo upstream for docker-compose.yml. Never deploy it.
FROM deps AS demo
COPY --from=build /app/dist-demo ./dist-demo
USER node
ENTRYPOINT ["node"]
CMD ["dist-demo/token-server-main.js"]

# The production image: the default target, so it stays the last stage.
FROM deps AS runtime
# A small young generation: tokengate allocates little per Check, and V8's default sizing
# (proportional to the live heap) costs ~100 MB of RSS under load with many providers.
ENV NODE_OPTIONS=--max-semi-space-size=2
COPY --from=build /app/dist ./dist
COPY --from=build /app/proto ./proto
# Files stay root-owned and read-only for the service user; it needs no writable path.
USER node
# 9191 gRPC (ext_authz, access-log feedback, health), 9192 admin HTTP (/healthz, /readyz, /metrics).
EXPOSE 9191 9192
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve", "--config", "/etc/tokengate/tokengate.yaml"]
