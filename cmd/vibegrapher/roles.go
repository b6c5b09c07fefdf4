package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/vibegrapher/vibegrapher/api"
	"github.com/vibegrapher/vibegrapher/api/realtime"
	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/jobs"
	"github.com/vibegrapher/vibegrapher/jobs/jobargs"
	"github.com/vibegrapher/vibegrapher/llm"
	"github.com/vibegrapher/vibegrapher/sandbox"
	"github.com/vibegrapher/vibegrapher/telemetry"
)

// roles says what one process runs.
type roles struct {
	api, realtime, worker bool
}

func rolesOf(cmd string, realtimeFlag bool) roles {
	switch cmd {
	case "all":
		return roles{api: true, realtime: true, worker: true}
	case "api":
		return roles{api: true, realtime: realtimeFlag}
	case "worker":
		return roles{worker: true}
	case "realtime":
		return roles{realtime: true}
	}
	return roles{}
}

// env is what every role is built from.
type env struct {
	cfg    Config
	log    *slog.Logger
	pool   *pgxpool.Pool
	schema *db.Schema
	store  *db.Store
	tel    *telemetry.Telemetry
}

// serve runs the roles until ctx ends, then shuts them down: the HTTP server
// stops taking requests, and the worker lets running jobs finish (up to a
// deadline) before cancelling them, so River hands them to another worker.
func serve(ctx context.Context, e env, r roles) error {
	// One WARN when the database goes away and one INFO when it is back,
	// instead of a line per retry of every component.
	watch := db.WatchOutages(ctx, e.pool, e.log, time.Second)
	e.log = slog.New(watch.Handler(e.log.Handler()))
	slog.SetDefault(e.log)
	tel, err := startTelemetry(ctx, e, r)
	if err != nil {
		return err
	}
	defer stopTelemetry(e.log, tel)
	e.tel = tel
	prices, _ := llm.ParsePrices(e.cfg.ModelPrices) // validated with the config
	model := llm.New(llm.Config{
		APIKey: e.cfg.OpenAIAPIKey, BaseURL: e.cfg.OpenAIBaseURL,
		ThinkingModel: e.cfg.ThinkingModel, SmallModel: e.cfg.SmallModel,
		Prices: prices, Meter: tel.Meter(), Tracer: tel.Tracer(),
		Concurrency: e.cfg.VibecodeWorkers + e.cfg.EvaluateWorkers,
	})
	var client *jobargs.Client
	if r.worker {
		w, err := startWorker(ctx, e, model)
		if err != nil {
			return err
		}
		// The worker stops as soon as ctx ends, alongside the HTTP
		// server's shutdown, not after it: both must fit in the platform's
		// kill timeout.
		wctx, stopNow := context.WithCancel(ctx)
		stopped := make(chan struct{})
		go func() {
			<-wctx.Done()
			w.stop(e.log, e.cfg.ShutdownGrace)
			close(stopped)
		}()
		defer func() { stopNow(); <-stopped }()
		client = w.client
	} else if r.api {
		if client, err = jobargs.NewInsertOnlyClient(e.pool, e.log, tel.RiverPlugins()...); err != nil {
			return err
		}
	}
	if !r.api && !r.realtime {
		return serveMetrics(ctx, e)
	}

	srv := api.New(api.Options{
		Store: e.store, Schema: e.schema, Jobs: client, LLM: model, Log: e.log, SandboxTimeout: e.cfg.SandboxTimeout,
		CORSOrigins: e.cfg.CORSOrigins, APIToken: e.cfg.APIToken, RiverUIPassword: e.cfg.RiverUIPassword, Version: version,
		Telemetry: tel,
	})
	if r.api {
		ui, err := api.NewRiverUI(ctx, client, e.log)
		if err != nil {
			return fmt.Errorf("River UI: %w", err)
		}
		srv.Mount("/riverui/", ui)
	}
	var background sync.WaitGroup
	defer background.Wait()
	var h http.Handler
	if r.realtime {
		rt, err := realtime.New(realtime.Options{
			Pool: e.pool, Log: e.log, CORSOrigins: e.cfg.CORSOrigins, APIToken: e.cfg.APIToken,
			HeartbeatInterval: e.cfg.HeartbeatInterval, Meter: tel.Meter(),
		})
		if err != nil {
			return err
		}
		defer rt.Close()
		// Event retention is River's jobs.PruneEventsWorker, not this role's.
		background.Go(func() {
			if err := rt.Run(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("realtime stopped", "error", err)
			}
			// Closing as soon as ctx ends ends the long polls, which the
			// HTTP shutdown would otherwise wait for.
			rt.Close()
		})
		srv.Mount("/socket.io/", rt.Handler())
		e.log.Info("realtime: Socket.IO at /socket.io/")
	}
	h = srv.Handler()
	if !r.api {
		// The realtime role alone answers Socket.IO and the probes only.
		full := h
		h = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			switch {
			case strings.HasPrefix(req.URL.Path, "/socket.io/"), req.URL.Path == "/healthz", req.URL.Path == "/readyz", telemetry.IsOwnPath(req.URL.Path):
				full.ServeHTTP(w, req)
			default:
				api.NotServedHere(w, req)
			}
		})
	}
	return listen(ctx, e, h)
}

func listen(ctx context.Context, e env, h http.Handler) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(e.cfg.Host, strconv.Itoa(e.cfg.Port)))
	if err != nil {
		return err
	}
	return serveOn(ctx, e, ln, h)
}

// serveOn serves h on ln until ctx ends, then shuts down within
// SHUTDOWN_GRACE. Accept failures for want of a kernel resource are waited
// out (listener.go), not the end of serving.
func serveOn(ctx context.Context, e env, ln net.Listener, h http.Handler) error {
	httpSrv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	e.log.Info("serving", "addr", ln.Addr().String(), "version", version)
	errc := make(chan error, 1)
	go func() { errc <- httpSrv.Serve(newPatientListener(ln, e.log, e.tel.Meter())) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	e.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), e.cfg.ShutdownGrace)
	defer cancel()
	err := httpSrv.Shutdown(shutdownCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		// A client still sending a request, or an answer still being
		// written: the grace is over, so cut it, as SIGKILL would a moment
		// later, and exit as a shutdown does rather than as a failure.
		e.log.Warn("connections still open after SHUTDOWN_GRACE were closed", "grace", e.cfg.ShutdownGrace)
		_ = httpSrv.Close() // its listener is closed already, which it reports
		return nil
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// worker is a running worker role: its River client and its liveness.
type worker struct {
	client *jobargs.Client
	live   *jobs.Liveness
}

// shutdownCancel bounds the hand-over after the grace period: cancelled
// jobs return at once and River makes them available to the other workers.
const shutdownCancel = 5 * time.Second

func startWorker(ctx context.Context, e env, model *llm.Client) (*worker, error) {
	if e.cfg.OpenAIAPIKey == "" {
		e.log.Warn("OPENAI_API_KEY is not set: vibecode messages will fail until it is")
	}
	deps := &jobs.Deps{
		Store:         e.store,
		LLM:           model,
		MaxIterations: e.cfg.MaxIterations,
		Log:           e.log,
		DeltaInterval: 75 * time.Millisecond,
		DeltaRate:     e.cfg.DeltaRate,
	}
	box, err := sandbox.New(sandbox.Config{
		Python: e.cfg.SandboxPython, ScratchRoot: e.cfg.MediaPath, Timeout: e.cfg.SandboxTimeout,
		MemoryMB: e.cfg.SandboxMemoryMB, AllowUnisolated: e.cfg.SandboxUnisolated, Logger: e.log,
		Meter: e.tel.Meter(), Tracer: e.tel.Tracer(),
	})
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	tests := &jobs.RunTestWorker{Sandbox: box, MaxTimeout: e.cfg.SandboxTimeout}
	prune := &jobs.PruneEventsWorker{Retention: e.cfg.EventRetention}
	var periodic []*river.PeriodicJob
	if e.cfg.EventRetention > 0 {
		periodic = append(periodic, jobs.PruneEventsPeriodically())
	}
	client, live, err := jobs.NewLiveWorkerClient(e.pool, e.log, jobs.NewWorkers(deps, tests, prune), jobs.WorkerConfig{
		VibecodeWorkers: e.cfg.VibecodeWorkers, EvaluateWorkers: e.cfg.EvaluateWorkers, TestWorkers: e.cfg.testWorkers(),
		PeriodicJobs: periodic,
		Plugins:      e.tel.RiverPlugins(),
	})
	if err != nil {
		return nil, err
	}
	if err := observeWorker(e, client); err != nil {
		return nil, err
	}
	// The lock first: without it the other workers would take this one's
	// jobs for a dead worker's.
	if err := live.Start(ctx); err != nil {
		return nil, err
	}
	// Not ctx: cancelling Start's context cancels running jobs at once.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		live.Stop()
		return nil, fmt.Errorf("start River: %w", err)
	}
	e.log.Info("worker started", "client_id", live.ClientID, "vibecode_workers", e.cfg.VibecodeWorkers,
		"evaluate_workers", e.cfg.EvaluateWorkers, "test_workers", e.cfg.testWorkers())
	return &worker{client: client, live: live}, nil
}

// stop stops fetching, lets running jobs finish for grace, then cancels
// them: River makes a job cancelled this way available again at once, with
// its attempt given back, and another worker resumes it from what is stored.
// The liveness lock is released last.
func (w *worker) stop(log *slog.Logger, grace time.Duration) {
	defer w.live.Stop()
	soft, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := w.client.Stop(soft); err == nil {
		return
	}
	log.Warn("jobs still running after the shutdown grace; handing them over to the other workers", "grace", grace)
	hard, cancel2 := context.WithTimeout(context.Background(), shutdownCancel)
	defer cancel2()
	_ = w.client.StopAndCancel(hard)
}
