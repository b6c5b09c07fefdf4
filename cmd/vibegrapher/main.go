// Command vibegrapher runs the Vibegrapher backend. One binary, several roles:
//
//	vibegrapher all        every role in one process (development)
//	vibegrapher api        REST API (add --realtime to serve Socket.IO too)
//	vibegrapher worker     River workers: the vibecode loop and the sandbox
//	vibegrapher realtime   Socket.IO only, for scaling connections apart
//	vibegrapher migrate    apply the database schema
//	vibegrapher reset-db   drop everything, migrate, seed sample data (--no-seed)
//	vibegrapher version    print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/vibegrapher/vibegrapher/db"
	"github.com/vibegrapher/vibegrapher/sandbox"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `usage: vibegrapher <command> [flags]

commands:
  all          run every role in one process (api with realtime, worker);
               --no-migrate: do not apply migrations at start
  api          serve the REST API (--realtime: also Socket.IO)
  worker       work River's jobs: the vibecode loop and test runs
  realtime     serve Socket.IO only
  migrate      apply River's and the application's migrations
  reset-db     end the database's other sessions, drop the application's and
               River's tables, migrate, seed (--no-seed)
  healthcheck  exit 0 when the service on HOST:PORT answers /healthz (for containers)
  version      print the version

Configuration comes from the environment and .env; see README.md.
`

func main() {
	sandbox.Main() // returns at once unless this process is a sandbox launcher
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "vibegrapher:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errors.New("no command given")
	}
	cmd, args := args[0], args[1:]
	if cmd == "version" {
		fmt.Println("vibegrapher", version)
		return nil
	}
	if cmd == "healthcheck" {
		return healthcheck()
	}
	if cmd == "help" || cmd == "-h" || cmd == "--help" {
		fmt.Print(usage)
		return nil
	}

	switch cmd {
	case "migrate", "reset-db", "api", "all", "worker", "realtime":
	default:
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	realtime := fs.Bool("realtime", false, "api: also serve Socket.IO on the same port")
	noSeed := fs.Bool("no-seed", false, "reset-db: leave the database empty")
	noMigrate := fs.Bool("no-migrate", false, "all: do not apply migrations at start (production runs the migrate command as a release step)")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil // the flags' help is printed: asked for, not a failure
	} else if err != nil {
		return err
	}
	if err := checkArgs(cmd, fs); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := loadConfig(ctx)
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	slog.SetDefault(log)

	pool, err := db.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	defer func() { // runs before pool.Close
		flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		db.FlushAnnouncements(flush, pool)
	}()
	schema, err := db.NewSchema(pool, log)
	if err != nil {
		return err
	}
	store := &db.Store{Pool: pool}

	switch cmd {
	case "migrate":
		return schema.Migrate(ctx)
	case "reset-db":
		if err := schema.Reset(ctx); err != nil {
			return err
		}
		if *noSeed {
			log.Info("database reset, not seeded")
			return nil
		}
		p, err := db.Seed(ctx, store)
		if err != nil {
			return err
		}
		log.Info("database reset and seeded", "project", p.ID, "slug", p.Slug)
		return nil
	case "all":
		if cfg.AutoMigrate && !*noMigrate {
			if err := schema.Migrate(ctx); err != nil {
				return err
			}
		}
	}
	return serve(ctx, env{cfg: cfg, log: log, pool: pool, schema: schema, store: store}, rolesOf(cmd, *realtime))
}

// healthcheck asks the service this configuration (the environment and
// .env) runs for its /healthz: on HOST:PORT, or on the loopback when HOST
// binds every address (the runtime image has no curl). It is for the roles
// that serve HTTP; a worker serves no PORT, and a deployment checks its
// METRICS_ADDR listener by TCP instead (fly.toml).
func healthcheck() error {
	cfg, err := loadConfig(context.Background())
	if err != nil {
		return err
	}
	host := cfg.Host
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	c := &http.Client{Timeout: 3 * time.Second}
	res, err := c.Get("http://" + net.JoinHostPort(host, strconv.Itoa(cfg.Port)) + "/healthz")
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz answered %s", res.Status)
	}
	return nil
}

// flagCommands are the commands each flag is for.
var flagCommands = map[string]string{"realtime": "api", "no-seed": "reset-db", "no-migrate": "all"}

// checkArgs refuses what the command would ignore: an argument (flag stops
// at the first one, so `api foo --realtime` started without Socket.IO) and a
// flag of another command.
func checkArgs(cmd string, fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q (flags go before nothing else; see vibegrapher help)", cmd, fs.Arg(0))
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		if want := flagCommands[f.Name]; want != cmd && err == nil {
			err = fmt.Errorf("%s: -%s is a flag of %s only", cmd, f.Name, want)
		}
	})
	return err
}
