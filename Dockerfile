# The vibegrapher image: every role (`all`, `api`, `worker`, `realtime`,
# `migrate`) and the sandbox's Python. Built with the classic builder or
# BuildKit alike: no `# syntax=` line (it would fetch a frontend image from a
# registry) and no BuildKit-only instruction.

# Build: cgo is required (tree-sitter's Python grammar is C).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
# .dockerignore lets only Go sources, go.mod/go.sum and the embedded SQL in:
# a change to docs, tests or deployment files keeps this layer cached.
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/vibegrapher ./cmd/vibegrapher

# Runtime: Debian bookworm slim, whose python3 (3.11) is the language version
# domain/pyast's CheckSyntax accepts, with the OpenAI Agents SDK pinned
# (deploy/sandbox-requirements.txt) in a venv the sandbox runs test cases with.
FROM debian:bookworm-slim
# A private mirror of PyPI, when there is one (e.g. --build-arg PIP_INDEX_URL=…).
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_TRUSTED_HOST=
COPY deploy/sandbox-requirements.txt /tmp/sandbox-requirements.txt
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates tini \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/sandbox-python \
 && PIP_INDEX_URL="$PIP_INDEX_URL" PIP_TRUSTED_HOST="$PIP_TRUSTED_HOST" \
    /opt/sandbox-python/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/sandbox-requirements.txt \
 && rm /tmp/sandbox-requirements.txt \
 && groupadd --system --gid 10001 vibegrapher \
 && useradd --system --create-home --uid 10001 --gid 10001 vibegrapher
# Outside /usr: the sandbox shows test code /usr (read-only), and the server's
# own files are not for it to read.
COPY --from=build /out/vibegrapher /opt/vibegrapher/bin/vibegrapher
USER 10001:10001
WORKDIR /home/vibegrapher
ENV PATH=/opt/vibegrapher/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOST=0.0.0.0 \
    PORT=8000 \
    SANDBOX_PYTHON=/opt/sandbox-python/bin/python3 \
    MEDIA_PATH=/tmp/vibegrapher-media \
    LOG_FORMAT=json
EXPOSE 8000
# No HEALTHCHECK here: the image runs roles with different listeners (a worker
# has no HTTP port of its own), so each deployment says what to check:
# docker-compose.yml runs `vibegrapher healthcheck` (GET /healthz on $PORT),
# fly.toml checks /readyz on web machines and the metrics port on workers.
ENTRYPOINT ["/usr/bin/tini", "--", "vibegrapher"]
CMD ["all"]
