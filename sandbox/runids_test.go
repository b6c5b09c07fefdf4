//go:build linux

package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestRunIDs(t *testing.T) {
	p := newRunIDs(100, 3)
	ctx := context.Background()
	a, _ := p.acquire(ctx)
	b, _ := p.acquire(ctx)
	p.release(a)
	c, _ := p.acquire(ctx)
	d, _ := p.acquire(ctx)
	// The least recently released id comes last: a run's id is not handed
	// out again while older free ones remain.
	if a != 100 || b != 101 || c != 102 || d != 100 {
		t.Fatalf("got %d %d %d %d, want 100 101 102 100", a, b, c, d)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.acquire(canceled); err == nil {
		t.Fatal("acquired an id with every id in use")
	}
}

func TestMappable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "uid_map")
	for _, c := range []struct {
		uidMap string
		want   bool
	}{
		{"         0          0 4294967295\n", true},
		{"         0     100000      65536\n", true},
		{"         0     100000      65000\n", false},
		{"         0     100000      65511\n", false},
		{"         0     100000      1\n     65000     200000        512\n", true},
		{"      1000       1000          1\n", false},
	} {
		if err := os.WriteFile(file, []byte(c.uidMap), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := mappable(file, runUIDFirst, runUIDCount); got != c.want {
			t.Errorf("mappable(%q) = %v, want %v", c.uidMap, got, c.want)
		}
	}
	if mappable(filepath.Join(t.TempDir(), "none"), runUIDFirst, runUIDCount) {
		t.Error("a missing map is mappable")
	}
}
