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
}

// serve runs the roles until ctx ends, then shuts them down: the HTTP server
// stops taking requests, and the worker lets running jobs finish (up to a
// deadline) before cancelling them, so River hands them to another worker.
func serve(ctx context.Context, e env, r roles) error {
	model := llm.New(llm.Config{
		APIKey: e.cfg.OpenAIAPIKey, BaseURL: e.cfg.OpenAIBaseURL,
		ThinkingModel: e.cfg.ThinkingModel, SmallModel: e.cfg.SmallModel,
	})
	var client *jobargs.Client
	var err error
	if r.worker {
		client, err = startWorker(ctx, e, model)
		if err != nil {
			return err
		}
		defer stopWorker(e.log, client)
	} else if r.api {
		if client, err = jobargs.NewInsertOnlyClient(e.pool, e.log); err != nil {
			return err
		}
	}
	if !r.api && !r.realtime {
		<-ctx.Done()
		return nil
	}

	srv := api.New(api.Options{
		Store: e.store, Schema: e.schema, Jobs: client, LLM: model, Log: e.log, SandboxTimeout: e.cfg.SandboxTimeout,
		CORSOrigins: e.cfg.CORSOrigins, APIToken: e.cfg.APIToken, Version: version,
	})
	if r.api {
		ui, err := api.NewRiverUI(ctx, client, e.log, e.cfg.RiverUIPassword)
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
			HeartbeatInterval: e.cfg.HeartbeatInterval,
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
			case strings.HasPrefix(req.URL.Path, "/socket.io/"), req.URL.Path == "/healthz", req.URL.Path == "/readyz":
				full.ServeHTTP(w, req)
			default:
				http.NotFound(w, req)
			}
		})
	}
	return listen(ctx, e, h)
}

func listen(ctx context.Context, e env, h http.Handler) error {
	httpSrv := &http.Server{
		Addr:              net.JoinHostPort(e.cfg.Host, strconv.Itoa(e.cfg.Port)),
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	ln, err := net.Listen("tcp", httpSrv.Addr)
	if err != nil {
		return err
	}
	e.log.Info("serving", "addr", ln.Addr().String(), "version", version)
	errc := make(chan error, 1)
	go func() { errc <- httpSrv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	e.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func startWorker(ctx context.Context, e env, model *llm.Client) (*jobargs.Client, error) {
	if e.cfg.OpenAIAPIKey == "" {
		e.log.Warn("OPENAI_API_KEY is not set: vibecode messages will fail until it is")
	}
	deps := &jobs.Deps{
		Store:         e.store,
		LLM:           model,
		MaxIterations: e.cfg.MaxIterations,
		Log:           e.log,
		DeltaInterval: 75 * time.Millisecond,
	}
	box, err := sandbox.New(sandbox.Config{
		Python: e.cfg.SandboxPython, ScratchRoot: e.cfg.MediaPath, Timeout: e.cfg.SandboxTimeout,
		MemoryMB: e.cfg.SandboxMemoryMB, AllowUnisolated: e.cfg.SandboxUnisolated, Logger: e.log,
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
	client, err := jobs.NewWorkerClient(e.pool, e.log, jobs.NewWorkers(deps, tests, prune), jobs.WorkerConfig{
		VibecodeWorkers: e.cfg.VibecodeWorkers, EvaluateWorkers: e.cfg.EvaluateWorkers, TestWorkers: e.cfg.testWorkers(),
		PeriodicJobs: periodic,
	})
	if err != nil {
		return nil, err
	}
	// Not ctx: cancelling Start's context cancels running jobs at once.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, fmt.Errorf("start River: %w", err)
	}
	e.log.Info("worker started", "vibecode_workers", e.cfg.VibecodeWorkers, "evaluate_workers", e.cfg.EvaluateWorkers,
		"test_workers", e.cfg.testWorkers())
	return client, nil
}

// stopWorker lets running jobs finish for a while, then cancels them; a
// cancelled job is retried by River on another worker.
func stopWorker(log *slog.Logger, client *jobargs.Client) {
	soft, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	if err := client.Stop(soft); err == nil {
		return
	}
	log.Warn("jobs still running after 25s; cancelling them")
	hard, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	_ = client.StopAndCancel(hard)
}
