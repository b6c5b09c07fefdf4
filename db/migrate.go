package db

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/vibegrapher/vibegrapher/migrations"
)

// migrateLockID serialises schema changes across processes: rivermigrate takes
// no lock of its own, and several replicas may start at once.
const migrateLockID = 7_146_201_990

// Schema applies and checks the database schema: River's tables (rivermigrate)
// and the application's (goose, from the embedded migrations package).
type Schema struct {
	pool  *pgxpool.Pool
	river *rivermigrate.Migrator[pgx.Tx]
	goose *goose.Provider
	log   *slog.Logger
}

// NewSchema prepares the migrators for pool.
func NewSchema(pool *pgxpool.Pool, log *slog.Logger) (*Schema, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rm, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: log})
	if err != nil {
		return nil, err
	}
	gp, err := goose.NewProvider(goose.DialectPostgres, stdlib.OpenDBFromPool(pool), fs.FS(migrations.FS),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return &Schema{pool: pool, river: rm, goose: gp, log: log}, nil
}

// Migrate applies River's migrations and then the application's.
func (s *Schema) Migrate(ctx context.Context) error {
	return s.locked(ctx, s.up)
}

// Reset drops the application's and River's tables and migrates again: an
// empty database at the current schema.
//
// Like DROP DATABASE … WITH (FORCE), it first ends the database's other
// client sessions that its role may end (those of another application_name
// than this process's; a superuser's session, or another role's without
// pg_signal_backend, is left, as are all when DATABASE_URL names the
// application_name every process shares). A
// running service's connections hold plans of the tables and types it drops
// (River's job-state enum is created anew), and each would fail one request
// or job after the reset ("cached plan must not change result type"); ended,
// they are replaced when next taken from their pool, which pings a
// connection idle for over a second. A session left idle in a transaction
// would also block the drop. The sessions are ended again once the schema is
// back: a running service connects anew during the reset (River polls every
// 200 ms), and a connection that prepared a statement before the drop would
// hold its stale plan for the request that next took it: a 500 well after
// the reset (TestAResetEndsTheSessionsThatConnectedWhileItRan; the likely
// cause of one failure of TestAServiceRunningThroughResetDBAnswers in CI).
func (s *Schema) Reset(ctx context.Context) error {
	return s.locked(ctx, func(ctx context.Context) error {
		if err := s.endOtherSessions(ctx); err != nil {
			return err
		}
		if _, err := s.goose.DownTo(ctx, 0); err != nil {
			return fmt.Errorf("drop application schema: %w", err)
		}
		if _, err := s.river.Migrate(ctx, rivermigrate.DirectionDown, &rivermigrate.MigrateOpts{TargetVersion: -1}); err != nil {
			return fmt.Errorf("drop River schema: %w", err)
		}
		if err := s.up(ctx); err != nil {
			return err
		}
		return s.endOtherSessions(ctx)
	})
}

// endOtherSessions ends the database's other client sessions that this
// role may end (Reset).
func (s *Schema) endOtherSessions(ctx context.Context) error {
	var ended int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
				AND application_name IS DISTINCT FROM current_setting('application_name')
				-- only what this role may end (it has the privileges of the session's
				-- role, or pg_signal_backend's): pg_terminate_backend fails on the rest
				AND ((SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
					OR NOT (SELECT rolsuper FROM pg_roles WHERE oid = usesysid)
						AND (pg_has_role(usesysid, 'USAGE') OR pg_has_role('pg_signal_backend', 'USAGE')))`).Scan(&ended); err != nil {
		return wrap(err, "end the database's other sessions")
	}
	if ended > 0 {
		s.log.Info("ended the database's other sessions for the reset", "sessions", ended)
	}
	return nil
}

// Check returns an error unless every migration, River's and ours, is applied.
// /readyz reports it.
func (s *Schema) Check(ctx context.Context) error {
	v, err := s.river.Validate(ctx, nil)
	if err != nil {
		return wrap(err, "check River migrations")
	}
	if !v.OK {
		return fmt.Errorf("River migrations pending: %v", v.Messages)
	}
	pending, err := s.goose.HasPending(ctx)
	if err != nil {
		return wrap(err, "check migrations")
	}
	if pending {
		return fmt.Errorf("application migrations pending: run `vibegrapher migrate`")
	}
	return nil
}

func (s *Schema) up(ctx context.Context) error {
	res, err := s.river.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("migrate River: %w", err)
	}
	for _, v := range res.Versions {
		s.log.Info("applied River migration", "version", v.Version, "name", v.Name)
	}
	results, err := s.goose.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate application schema: %w", err)
	}
	for _, r := range results {
		s.log.Info("applied migration", "version", r.Source.Version, "file", r.Source.Path)
	}
	return nil
}

func (s *Schema) locked(ctx context.Context, fn func(context.Context) error) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return wrap(err, "acquire connection for migrations")
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockID); err != nil {
		return wrap(err, "take migration lock")
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLockID) //nolint:errcheck
	return fn(ctx)
}
