// Command vibegrapher-load puts load on a running Vibegrapher and measures it.
//
//	vibegrapher-load realtime [flags]   Socket.IO fan-out, beside the official Node server (realtime.go)
//	vibegrapher-load pipeline [flags]   the message pipeline (pipeline.go)
//
// Without a subcommand the flags are the realtime load's, as before
// (`vibegrapher-load -clients 100,1000 -events 50 -rate 20`).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
)

// commands are the loads built into this binary; each file that defines one
// registers it from init (pipeline.go adds "pipeline").
var commands = map[string]func(args []string) error{
	"realtime": runRealtime,
}

func main() {
	name, args := "realtime", os.Args[1:]
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	run, ok := commands[name]
	if !ok {
		known := make([]string, 0, len(commands))
		for k := range commands {
			known = append(known, k)
		}
		slices.Sort(known)
		msg := fmt.Sprintf("unknown load %q (built in: %s)", name, strings.Join(known, ", "))
		if name == "pipeline" {
			msg = "pipeline: not built in"
		}
		fatal(errors.New(msg))
	}
	// The load's own collector was a ninth of its CPU (its clients and fake
	// model allocate per event), taken from the two cores it shares with the
	// service and PostgreSQL; its memory is not what is measured. GOGC in the
	// environment still sets it (and the service's, which inherits it).
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	// VGLOAD_CPUPROFILE=FILE profiles this process (the clients and the
	// fake model), to see what the load itself costs the shared CPUs.
	if path := os.Getenv("VGLOAD_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	// VGLOAD_TRACE=FILE writes an execution trace of this process (go tool
	// trace): when the fake model answered and the clients read, to set
	// beside one of the service's (/debug/pprof/trace).
	if path := os.Getenv("VGLOAD_TRACE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fatal(err)
		}
		if err := trace.Start(f); err != nil {
			fatal(err)
		}
		defer func() { trace.Stop(); f.Close() }()
	}
	if err := run(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fatal(fmt.Errorf("%s: %w", name, err))
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "vibegrapher-load:", err)
	os.Exit(1)
}
