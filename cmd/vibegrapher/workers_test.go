package main

import (
	"strings"
	"testing"
)

func TestDerivedTestWorkers(t *testing.T) {
	const gib = int64(1) << 30
	for _, c := range []struct {
		name      string
		cores     int
		memory    int64
		sandboxMB int
		want      int
	}{
		{"1 GB machine: half of it holds one 512 MB run", 2, 1 * gib, 512, 1},
		{"2 GB machine, 2 cores", 2, 2 * gib, 512, 2},
		{"cores bound a big machine", 4, 24 * gib, 512, 4},
		{"memory bounds a small one", 8, 2 * gib, 256, 4},
		{"never below one", 2, 256 << 20, 512, 1},
		{"memory unknown: one per core", 2, 0, 512, 2},
	} {
		if got := derivedTestWorkers(c.cores, c.memory, c.sandboxMB); got != c.want {
			t.Errorf("%s: %d workers, want %d", c.name, got, c.want)
		}
	}
}

func TestWorkerCountsAreValidated(t *testing.T) {
	for _, c := range []struct {
		env, value, want string
	}{
		{"VIBECODE_WORKERS", "0", "VIBECODE_WORKERS must be 1..10000"},
		{"EVALUATE_WORKERS", "20000", "EVALUATE_WORKERS must be 1..10000"},
		{"TEST_WORKERS", "-1", "TEST_WORKERS must be 0"},
	} {
		t.Run(c.env, func(t *testing.T) {
			t.Setenv(c.env, c.value)
			_, err := loadConfig(t.Context())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%s=%s: error %v, want one saying %q", c.env, c.value, err, c.want)
			}
		})
	}
	cfg, err := loadConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.VibecodeWorkers < 100 || cfg.EvaluateWorkers < 100 || cfg.testWorkers() < 1 {
		t.Fatalf("defaults %d vibecode, %d evaluate, %d test workers: want hundreds of agent jobs and at least one test run",
			cfg.VibecodeWorkers, cfg.EvaluateWorkers, cfg.testWorkers())
	}
}
