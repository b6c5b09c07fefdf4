# syntax=docker/dockerfile:1
# Build: cgo is required (tree-sitter's Python grammar is C).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/vibegrapher ./cmd/vibegrapher

# Runtime: Debian slim with the Python the sandbox runs test cases with, and
# the OpenAI Agents SDK so a project's workflow can be imported by its tests.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/sandbox-python \
 && /opt/sandbox-python/bin/pip install --no-cache-dir openai-agents \
 && useradd --system --create-home --uid 10001 vibegrapher
COPY --from=build /out/vibegrapher /usr/local/bin/vibegrapher
USER vibegrapher
WORKDIR /home/vibegrapher
ENV HOST=0.0.0.0 \
    PORT=8000 \
    SANDBOX_PYTHON=/opt/sandbox-python/bin/python3 \
    MEDIA_PATH=/tmp/vibegrapher-media \
    LOG_FORMAT=json
EXPOSE 8000
ENTRYPOINT ["/usr/bin/tini", "--", "vibegrapher"]
CMD ["all"]
