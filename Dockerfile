# syntax=docker/dockerfile:1
# tokengate: Envoy ext_authz service. Multi-stage: compile TypeScript with dev dependencies,
# ship only dist/, proto/ and production dependencies, run as the non-root `node` user.
#
#   docker build -t tokengate:0.1.0 .
#   docker run --rm -v "$PWD/tokengate.yaml:/etc/tokengate/tokengate.yaml:ro" tokengate:0.1.0
#
# The image also carries the demo programs (dist/demo/*) used by docker-compose.yml.
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# .dockerignore narrows this to the sources (tsconfig*, src/, proto/, …), never node_modules.
COPY . .
# proto/ holds tokengate's own .proto files; make sure the runtime COPY finds it either way.
RUN mkdir -p proto && npm run build

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
# A small young generation: tokengate allocates little per Check, and V8's default sizing
# (proportional to the live heap) costs ~100 MB of RSS under load with many providers.
ENV NODE_OPTIONS=--max-semi-space-size=2
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY --from=build /app/proto ./proto
# Files stay root-owned and read-only for the service user; it needs no writable path.
USER node
# 9191 gRPC (ext_authz, access-log feedback, health), 9192 admin HTTP (/healthz, /readyz, /metrics).
EXPOSE 9191 9192
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve", "--config", "/etc/tokengate/tokengate.yaml"]
