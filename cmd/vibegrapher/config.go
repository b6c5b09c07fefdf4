package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/joho/godotenv"
	"github.com/sethvargo/go-envconfig"

	"github.com/vibegrapher/vibegrapher/llm"
)

// Config is the service's configuration, read from the environment (and from
// .env when present; real environment variables win). See SPEC.md §7 and the
// README's configuration table.
type Config struct {
	DatabaseURL       string        `env:"DATABASE_URL, default=postgres://postgres@127.0.0.1:5432/vibegrapher?sslmode=disable"`
	OpenAIAPIKey      string        `env:"OPENAI_API_KEY"`
	OpenAIBaseURL     string        `env:"OPENAI_BASE_URL"`
	ThinkingModel     string        `env:"THINKING_MODEL, default=gpt-5"`
	SmallModel        string        `env:"SMALL_MODEL, default=gpt-5-mini"`
	MaxIterations     int           `env:"MAX_ITERATIONS, default=3"`
	CORSOrigins       []string      `env:"CORS_ORIGINS, default=*"`
	Host              string        `env:"HOST, default=0.0.0.0"`
	Port              int           `env:"PORT, default=8000"`
	HeartbeatInterval time.Duration `env:"HEARTBEAT_INTERVAL, default=30s"`
	SandboxTimeout    time.Duration `env:"SANDBOX_TIMEOUT, default=30s"`
	SandboxMemoryMB   int           `env:"SANDBOX_MEMORY_MB, default=512"`
	SandboxPython     string        `env:"SANDBOX_PYTHON, default=python3"`
	SandboxUnisolated bool          `env:"SANDBOX_ALLOW_UNISOLATED, default=false"`
	MediaPath         string        `env:"MEDIA_PATH, default=media"`
	APIToken          string        `env:"API_TOKEN"`
	RiverUIPassword   string        `env:"RIVER_UI_PASSWORD"`
	LogLevel          string        `env:"LOG_LEVEL, default=info"`
	LogFormat         string        `env:"LOG_FORMAT, default=text"`
	EventRetention    time.Duration `env:"EVENT_RETENTION, default=168h"`
	AutoMigrate       bool          `env:"AUTO_MIGRATE, default=true"`
	// Jobs worked at once by one worker process (see workers.go).
	VibecodeWorkers int `env:"VIBECODE_WORKERS, default=500"`
	EvaluateWorkers int `env:"EVALUATE_WORKERS, default=500"`
	TestWorkers     int `env:"TEST_WORKERS, default=0"`
	// DeltaRate bounds the vibecode_delta events one worker process writes
	// a second (jobs.Deps.DeltaRate); 0 sets no bound.
	DeltaRate int `env:"DELTA_EVENTS_PER_SECOND, default=200"`
	// ShutdownGrace is how long a stopping worker lets running jobs finish
	// before it cancels them and hands them over (docs/reliability.md). It
	// must fit, with ShutdownCancel, in the platform's kill timeout (30 s).
	ShutdownGrace time.Duration `env:"SHUTDOWN_GRACE, default=20s"`
	// MetricsAddr is where a worker-only process serves /metrics and
	// /debug/pprof/ (e.g. ":9464"); empty serves nothing. Roles with HTTP serve
	// them on PORT.
	MetricsAddr string `env:"METRICS_ADDR"`
	// ModelPrices adds to or overrides the price table of model calls:
	// "model=input/cached_input/output" in USD per million tokens, comma
	// separated (llm.ParsePrices).
	ModelPrices string `env:"MODEL_PRICES"`
}

// loadConfig reads .env (if present) without overriding the environment, then
// the environment.
func loadConfig(ctx context.Context) (Config, error) {
	if err := godotenv.Load(); err != nil && !os.IsNotExist(err) {
		return Config{}, fmt.Errorf("read .env: %w", err)
	}
	var cfg Config
	if err := envconfig.Process(ctx, &cfg); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	// As LOG_LEVEL, whatever its case: LOG_FORMAT=JSON is json.
	cfg.LogFormat = strings.ToLower(cfg.LogFormat)
	return cfg, cfg.validate()
}

func (c Config) validate() error {
	switch {
	case c.Port < 1 || c.Port > 65535:
		return fmt.Errorf("PORT must be 1..65535, got %d", c.Port)
	case c.MaxIterations < 1:
		return fmt.Errorf("MAX_ITERATIONS must be at least 1, got %d", c.MaxIterations)
	case c.HeartbeatInterval <= 0:
		return fmt.Errorf("HEARTBEAT_INTERVAL must be positive, got %s", c.HeartbeatInterval)
	case c.SandboxTimeout <= 0:
		return fmt.Errorf("SANDBOX_TIMEOUT must be positive, got %s", c.SandboxTimeout)
	case c.ShutdownGrace <= 0:
		return fmt.Errorf("SHUTDOWN_GRACE must be positive, got %s", c.ShutdownGrace)
	case c.SandboxMemoryMB < 32:
		return fmt.Errorf("SANDBOX_MEMORY_MB must be at least 32, got %d", c.SandboxMemoryMB)
	case c.VibecodeWorkers < 1 || c.VibecodeWorkers > maxQueueWorkers:
		return fmt.Errorf("VIBECODE_WORKERS must be 1..%d, got %d", maxQueueWorkers, c.VibecodeWorkers)
	case c.EvaluateWorkers < 1 || c.EvaluateWorkers > maxQueueWorkers:
		return fmt.Errorf("EVALUATE_WORKERS must be 1..%d, got %d", maxQueueWorkers, c.EvaluateWorkers)
	case c.LogFormat != "text" && c.LogFormat != "json":
		return fmt.Errorf("LOG_FORMAT must be text or json, got %q", c.LogFormat)
	case c.EventRetention < 0:
		return fmt.Errorf("EVENT_RETENTION must be 0 (keep every event) or positive, got %s", c.EventRetention)
	case c.DeltaRate < 0:
		return fmt.Errorf("DELTA_EVENTS_PER_SECOND must be 0 (no bound) or positive, got %d", c.DeltaRate)
	case c.TestWorkers < 0 || c.TestWorkers > maxQueueWorkers:
		return fmt.Errorf("TEST_WORKERS must be 0 (from the cores and memory) or 1..%d, got %d", maxQueueWorkers, c.TestWorkers)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if _, err := llm.ParsePrices(c.ModelPrices); err != nil {
		return err
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("LOG_LEVEL must be debug, info, warn or error, got %q", s)
	}
	return l, nil
}

func newLogger(c Config) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
