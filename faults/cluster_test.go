package faults

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// cluster is a PostgreSQL cluster of the suite's own, made with Debian's
// pg_createcluster.
type cluster struct {
	t       testing.TB
	version string
	name    string
	port    int
	pool    *pgxpool.Pool // the suite's own connections to the service's database
}

// newCluster creates and starts a cluster on a free port in 5450-5459; it is
// dropped when the test ends. It skips the test where that is not possible.
func newCluster(t testing.TB) *cluster {
	t.Helper()
	if _, err := exec.LookPath("pg_createcluster"); err != nil {
		t.Skip("faults: pg_createcluster is not installed")
	}
	if os.Geteuid() != 0 {
		t.Skip("faults: pg_createcluster needs root")
	}
	version := newestVersion(t)
	used := clusterPorts(t)
	for port := 5450; port <= 5459; port++ {
		if used[port] || !portFree(port) {
			continue
		}
		c := &cluster{t: t, version: version, name: fmt.Sprintf("vgfaults%d", port), port: port}
		out, err := exec.Command("pg_createcluster", version, c.name, "-p", strconv.Itoa(port),
			"-o", "fsync=off", "-o", "max_connections=200",
			"--start", "--", "--auth=trust").CombinedOutput()
		if err != nil {
			// Another suite may have taken the port in between.
			_ = exec.Command("pg_dropcluster", "--stop", version, c.name).Run()
			t.Logf("faults: pg_createcluster on %d: %v: %s", port, err, lastLines(string(out), 3))
			continue
		}
		t.Cleanup(func() {
			if out, err := exec.Command("pg_dropcluster", "--stop", version, c.name).CombinedOutput(); err != nil {
				t.Errorf("faults: drop cluster %s: %v: %s", c.name, err, out)
			}
		})
		c.waitReady()
		return c
	}
	t.Skip("faults: no free port in 5450-5459 for a cluster")
	return nil
}

func (c *cluster) url(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, database)
}

// ctl runs pg_ctlcluster action (start, stop, restart) in immediate mode for
// stops: what a crash or an operator's fast restart looks like to clients.
func (c *cluster) ctl(action string) {
	c.t.Helper()
	args := []string{c.version, c.name, action}
	if action != "start" {
		args = append(args, "-m", "fast")
	}
	if out, err := exec.Command("pg_ctlcluster", args...).CombinedOutput(); err != nil {
		c.t.Fatalf("faults: pg_ctlcluster %s: %v: %s", action, err, out)
	}
	if action != "stop" {
		c.waitReady()
	}
}

func (c *cluster) waitReady() {
	c.t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if exec.Command("pg_isready", "-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-q").Run() == nil {
			return
		}
	}
	c.t.Fatalf("faults: cluster on %d not ready", c.port)
}

func newestVersion(t testing.TB) string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(dirs) == 0 {
		t.Skip("faults: no PostgreSQL server binaries under /usr/lib/postgresql")
	}
	sort.Strings(dirs)
	return filepath.Base(filepath.Dir(filepath.Dir(dirs[len(dirs)-1])))
}

// clusterPorts are the ports of existing clusters, running or not.
func clusterPorts(t testing.TB) map[int]bool {
	out, err := exec.Command("pg_lsclusters", "-h").Output()
	if err != nil {
		t.Skipf("faults: pg_lsclusters: %v", err)
	}
	used := map[int]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 3 {
			if p, err := strconv.Atoi(f[2]); err == nil {
				used[p] = true
			}
		}
	}
	return used
}

func portFree(port int) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

// freePort asks the kernel for a free loopback port for a role to listen on.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
