// Package db is the PostgreSQL side of Vibegrapher: connections, migrations,
// queries, the git object store, the outbox of realtime events and the agents'
// conversation memory. Nothing outside this package writes SQL.
package db

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vibegrapher/vibegrapher/domain"
)

// Querier is what both a pool and a transaction offer, so that queries can run
// inside a caller's transaction or on their own.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// DefaultMaxConns is the pool size unless the URL sets pool_max_conns. pgxpool's
// own default is max(4, NumCPU), which River's producers and the HTTP handlers
// would exhaust on a 2-core machine; a pool much larger than PostgreSQL's cores
// costs PostgreSQL CPU instead (more backends contending for the same locks
// and buffers). Measured with 50 sessions sending text messages against a
// 2-core PostgreSQL (docs/benchmarks.md, third round): PostgreSQL's CPU per
// message with 8, 12, 20 and 40 connections 2.6–2.7, 2.6–2.7, 3.0–3.1 and
// 3.5–3.8 ms; messages/s 325–357, 346–354, 330–331 and 286–301. Jobs do not
// hold a connection while they wait on the model, so this bounds statements
// in parallel, not jobs; a larger database wants a larger pool_max_conns.
// When all are taken, jobs' transactions are served before requests' in a
// process that runs both (slots.go).
const DefaultMaxConns = 10

// processName is the application_name of this process's connections, unless
// DATABASE_URL gives one: pg_stat_activity shows which sessions are the
// service's, and Schema.Reset ends every session of the database but this
// process's own.
var processName = "vibegrapher " + rand.Text()[:8]

// Open connects to the database at url, creating the database first when it
// does not exist.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	if _, named := cfg.ConnConfig.RuntimeParams["application_name"]; !named {
		cfg.ConnConfig.RuntimeParams["application_name"] = processName
	}
	if err := EnsureDatabase(ctx, cfg.ConnConfig); err != nil {
		return nil, err
	}
	Configure(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL at %s: %w", cfg.ConnConfig.Host, err)
	}
	return pool, nil
}

// EnsureDatabase creates the database named in cfg when it is missing, by
// connecting to the server's "postgres" database.
func EnsureDatabase(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return conn.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	admin := cfg.Copy()
	admin.Database = "postgres"
	conn, err = pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL to create database %q: %w", cfg.Database, err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{cfg.Database}.Sanitize())
	if err != nil && !isCode(err, "42P04") { // duplicate_database: another process won
		return fmt.Errorf("create database %q: %w", cfg.Database, err)
	}
	return nil
}

// onceMoreAfterDeadlock runs fn, a transaction, and runs it once more when
// PostgreSQL broke a deadlock by failing it. Lock order (docs/reliability.md)
// leaves one cycle: a diff stored between a project delete's lock of the
// project's diffs and of the project, which a commit then holds while it
// waits for the project, and the delete for it (its session's key share, or
// in the cascade the diff). Either may be failed. A delete tried again
// waits for the commit at its first lock (the diffs) and deletes the
// committed project; a commit waits for the delete first (CommitDiff) and
// finds its diff gone (404).
func onceMoreAfterDeadlock(fn func() error) error {
	err := fn()
	if isCode(err, "40P01") { // deadlock_detected
		err = fn()
	}
	return err
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// IsUnavailable reports whether err means the database cannot be reached, as
// opposed to a query that failed.
func IsUnavailable(err error) bool {
	var connErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connErr), errors.As(err, &netErr):
		return true
	case errors.Is(err, pgx.ErrTxClosed):
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, 08* connection exceptions
		return pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03" || pgErr.Code[:2] == "08"
	}
	return pgconn.SafeToRetry(err)
}

// IsUnmigrated reports whether err says the database's schema is behind the
// server's: a table or column it queries does not exist (an api process on a
// database nobody ran `vibegrapher migrate` on).
func IsUnmigrated(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "42703")
}

// wrap turns a database error into a domain error: unavailable when the
// server cannot be reached, else internal with context.
func wrap(err error, what string) error {
	if err == nil {
		return nil
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return err
	}
	if IsUnavailable(err) {
		return &domain.Error{Code: domain.EUNAVAILABLE, Message: "the database is unavailable; retry shortly"}
	}
	if parent, ok := deletedParent(err); ok {
		return &domain.Error{Code: domain.ENOTFOUND, Message: fmt.Sprintf("%s: the %s was deleted meanwhile", what, parent)}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// deletedParent names the row an insert referred to when a concurrent delete
// removed it (the handler had read it a moment before): a foreign key
// violation of constraint <table>_<parent>_id_fkey.
func deletedParent(err error) (string, bool) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23503" || !strings.HasPrefix(pgErr.Message, "insert or update") {
		return "", false
	}
	parent, prefixed := strings.CutPrefix(pgErr.ConstraintName, pgErr.TableName+"_")
	parent, suffixed := strings.CutSuffix(parent, "_id_fkey")
	if !prefixed || !suffixed || parent == "" {
		return "", false
	}
	return strings.ReplaceAll(parent, "_", " "), true
}

// DB is what the store runs on: the pool, or (in worker tests) a
// transaction, in which the store's own transactions become savepoints.
type DB interface {
	Querier
	Begin(ctx context.Context) (pgx.Tx, error)
}

// InTx runs fn in a transaction, committing when it returns nil. The events
// fn emits are announced to the realtime processes right after the commit:
// without waiting when db is a pool (announce.go), else by a NOTIFY on db
// (see notifyAfterCommit).
func InTx(ctx context.Context, db DB, fn func(pgx.Tx) error) error {
	var tx *eventTx
	if pool, ok := db.(*pgxpool.Pool); ok {
		tx = lazyTx(pool) // BEGIN goes with the first statement (txqueue.go)
	} else {
		begun, err := db.Begin(ctx)
		if err != nil {
			return wrap(err, "begin transaction")
		}
		tx = &eventTx{Tx: begun}
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return wrap(err, "commit")
	}
	switch pool, ok := db.(*pgxpool.Pool); {
	case tx.lastSeq == 0:
	case ok:
		announcerOf(pool).committed(tx.lastSeq, tx.announced())
	default:
		notifyAfterCommit(context.WithoutCancel(ctx), db, string(appendNotification(nil, tx.lastSeq, tx.announced())))
	}
	return nil
}
