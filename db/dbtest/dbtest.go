// Package dbtest gives each test its own migrated PostgreSQL database.
//
// The server is TEST_DATABASE_URL when set, else the local server on
// 127.0.0.1:5432, else a testcontainers PostgreSQL where Docker runs;
// TEST_DATABASE=testcontainers goes straight to the container (image
// TEST_POSTGRES_IMAGE, default postgres:16-alpine). On hosts where
// testcontainers' reaper image cannot be pulled, set
// TESTCONTAINERS_RYUK_DISABLED=true and remove the containers afterwards
// (label org.testcontainers=true; `make test-testcontainers` does); inside a
// container, TESTCONTAINERS_HOST_OVERRIDE names the address where the engine
// publishes ports (docs/deployment.md). Each
// test's database is cloned from a template that is migrated once per schema
// version, so a fresh database costs one CREATE DATABASE, and tests can run in
// parallel, in one package or many, without seeing each other's rows.
package dbtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/migrations"
)

const localURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// templateLockID serialises template creation across test processes.
const templateLockID = 7_146_201_999

var (
	serverOnce sync.Once
	serverURL  string
	serverErr  error
)

// New returns a pool on a fresh migrated database that is dropped when t ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	u := NewURL(t)
	pool, err := newPool(context.Background(), u)
	if err != nil {
		t.Fatalf("dbtest: connect: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// NewURL creates a fresh migrated database and returns its URL. The database
// is dropped when t ends (after the cleanups registered later, such as pools).
func NewURL(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	base := server(t)
	tmpl, err := template(ctx, base)
	if err != nil {
		t.Fatalf("dbtest: prepare template database: %v", err)
	}
	name := "vgtest_" + randomHex(8)
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("dbtest: connect: %v", err)
	}
	defer admin.Close(ctx)
	for attempt := 0; ; attempt++ {
		_, err = admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, tmpl))
		// 55006: the template is briefly in use by a concurrent clone.
		if err == nil || !isCode(err, "55006") || attempt == 50 {
			break
		}
		time.Sleep(time.Duration(20+attempt*10) * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("dbtest: create database: %v", err)
	}
	DropAtCleanup(t, base, name)
	return withDatabase(base, name)
}

// DropAtCleanup drops database name on the server at serverURL when t ends,
// on a connection of its own (the test's are closed by then).
func DropAtCleanup(t testing.TB, serverURL, name string) {
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), serverURL)
		if err != nil {
			t.Logf("dbtest: drop %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("dbtest: drop %s: %v", name, err)
		}
	})
}

// ServerURL returns the URL of the server's maintenance database, for tests
// that manage databases themselves.
func ServerURL(t testing.TB) string {
	t.Helper()
	return server(t)
}

func server(t testing.TB) string {
	t.Helper()
	serverOnce.Do(func() { serverURL, serverErr = findServer() })
	if serverErr != nil {
		t.Fatalf("dbtest: no PostgreSQL for tests: %v", serverErr)
	}
	return serverURL
}

func findServer() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if os.Getenv("TEST_DATABASE") == "testcontainers" {
		return startContainer()
	}
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u, ping(ctx, u)
	}
	if ping(ctx, localURL) == nil {
		return localURL, nil
	}
	return startContainer()
}

func ping(ctx context.Context, u string) error {
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	return c.Close(ctx)
}

// startContainer runs PostgreSQL in Docker for the rest of the test process;
// the testcontainers reaper removes it afterwards (when it runs).
func startContainer() (u string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("no server on 127.0.0.1:5432, TEST_DATABASE_URL unset, and Docker unusable: %v", r)
		}
	}()
	ctx := context.Background()
	p, err := testcontainers.ProviderDefault.GetProvider()
	if err != nil {
		return "", fmt.Errorf("no server on 127.0.0.1:5432, TEST_DATABASE_URL unset, and no Docker: %w", err)
	}
	if err := p.Health(ctx); err != nil {
		return "", fmt.Errorf("no server on 127.0.0.1:5432, TEST_DATABASE_URL unset, and Docker unhealthy: %w", err)
	}
	image := os.Getenv("TEST_POSTGRES_IMAGE")
	if image == "" {
		image = "postgres:16-alpine"
	}
	ctr, err := tcpostgres.Run(ctx, image, tcpostgres.WithDatabase("postgres"),
		tcpostgres.WithUsername("postgres"), tcpostgres.WithPassword("postgres"), tcpostgres.BasicWaitStrategies())
	if err != nil {
		return "", fmt.Errorf("start PostgreSQL container: %w", err)
	}
	return ctr.ConnectionString(ctx, "sslmode=disable")
}

var (
	templateMu    sync.Mutex
	templateNames = map[string]string{}
)

// template returns the name of the migrated template database, creating it
// once per schema version: its name carries a hash of the migrations.
func template(ctx context.Context, base string) (string, error) {
	templateMu.Lock()
	defer templateMu.Unlock()
	if n, ok := templateNames[base]; ok {
		return n, nil
	}
	name := "vgtemplate_" + schemaHash()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", err
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockID); err != nil {
		return "", err
	}
	defer admin.Exec(ctx, "SELECT pg_advisory_unlock($1)", templateLockID) //nolint:errcheck
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		// Migrate under a scratch name and rename at the end, so a template
		// that exists is always complete.
		scratch := name + "_wip"
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+scratch+" WITH (FORCE)"); err != nil {
			return "", err
		}
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+scratch); err != nil {
			return "", err
		}
		if err := migrate(ctx, withDatabase(base, scratch)); err != nil {
			return "", fmt.Errorf("migrate template: %w", err)
		}
		if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", scratch, name)); err != nil {
			return "", err
		}
	}
	templateNames[base] = name
	return name, nil
}

// newPool is a pool on u configured as the service's (db.Configure).
func newPool(ctx context.Context, u string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		return nil, err
	}
	db.Configure(cfg)
	return pgxpool.NewWithConfig(ctx, cfg)
}

func migrate(ctx context.Context, u string) error {
	pool, err := newPool(ctx, u)
	if err != nil {
		return err
	}
	defer pool.Close()
	schema, err := db.NewSchema(pool, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	return schema.Migrate(ctx)
}

// schemaHash identifies the schema: the migration files and the River version
// compiled in (River's migrations come with its module).
func schemaHash() string {
	h := sha256.New()
	_ = fs.WalkDir(migrations.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, p)
		h.Write([]byte(p))
		h.Write(b)
		return err
	})
	h.Write([]byte(riverVersion()))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func withDatabase(base, name string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// Event is an outbox event of any name and payload, for tests of the outbox
// and the realtime delivery that do not care about the product's events.
type Event struct {
	Name    string
	Payload any // marshals to a JSON object
}

func (e Event) EventName() string { return e.Name }

func (e Event) MarshalJSON() ([]byte, error) {
	if e.Payload == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(e.Payload)
}
