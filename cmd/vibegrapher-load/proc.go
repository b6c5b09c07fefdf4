package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// What both load commands measure of a server process, and the scratch
// databases they run it on.

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on Linux for
// every architecture Go supports.
const clockTick = 10 * time.Millisecond

// readCPU returns the process's user + system CPU time so far.
func readCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(fields[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// readSyscalls returns how many read and write system calls the process
// has made so far (syscr + syscw of /proc/PID/io: every socket read and
// write, so a round trip to PostgreSQL or the model counts in both). Unlike
// CPU time, the count does not vary with how busy the machine is.
func readSyscalls(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n int64
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "syscr" && name != "syscw") {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/io: %w", pid, err)
		}
		n += v
		found++
	}
	if found != 2 {
		return 0, fmt.Errorf("/proc/%d/io: no syscr and syscw", pid)
	}
	return n, sc.Err()
}

// readRSS returns the process's resident set size in bytes.
func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// stagedBinary copies the executable at path to a new file and returns the
// copy's path, for the load to start: its RSS is then measured as a
// deployment sees it, and its pages are in the page cache, as the Node
// server's are (its binary is the clients' too).
//
// On this kernel (6.18, ext4) the pages that `go build` just wrote stay in
// the page cache as large folios, and a process maps a large folio whole
// when it touches any byte of it: an idle `vibegrapher all` started from a
// fresh build showed 73.8 MB VmRSS (62.4 MB of it the binary's file pages),
// a copy of it 50.1 MB (39.7 MB file), the same as the build after its
// cached pages were dropped. Dropping them (what this command did before)
// made the first run of every code path read the binary from disk while the
// load measured: the first events of a realtime run took 5–14 ms more than
// the steady state, enough to decide the p99 of 20,000 receives.
func stagedBinary(path string) (string, func(), error) {
	src, err := os.Open(path)
	if err != nil {
		return "", nil, err
	}
	defer src.Close()
	dir, err := os.MkdirTemp("", "vgload-bin-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	staged := filepath.Join(dir, filepath.Base(path))
	dst, err := os.OpenFile(staged, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err == nil {
		_, err = io.Copy(dst, src)
		err = errors.Join(err, dst.Close())
	}
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("copy %s: %w", path, err)
	}
	return staged, cleanup, nil
}

// procUsage is a process's CPU time so far and its resident set.
func procUsage(pid int) (time.Duration, int64, error) {
	cpu, err := readCPU(pid)
	if err != nil {
		return 0, 0, err
	}
	rss, err := readRSS(pid)
	return cpu, rss, err
}

// scratchDatabase names a database of its own on the loopback server at
// serverURL (prefix, the process id and the time) and returns its URL and a
// function that drops it. Creating it is the caller's (or the service's).
func scratchDatabase(serverURL, prefix string) (*url.URL, string, func(), error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, "", nil, fmt.Errorf("-database-url: %w", err)
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" {
		return nil, "", nil, errors.New("-database-url must be a loopback server: this command creates and drops databases")
	}
	name := fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), time.Now().UnixNano())
	drop := func() {
		c, err := connectAdmin(context.Background(), serverURL)
		if err != nil {
			fmt.Fprintln(os.Stderr, "vibegrapher-load: drop", name+":", err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			fmt.Fprintln(os.Stderr, "vibegrapher-load: drop", name+":", err)
		}
	}
	u.Path = "/" + name
	return u, name, drop, nil
}

// postgresCPU returns the CPU time of this machine's PostgreSQL so far: the
// user + system time of every process named postgres, with that of its
// children that have ended (fields 14–17). It is meaningful only when the
// service's PostgreSQL runs here and nothing else uses it.
func postgresCPU() time.Duration {
	dirs, _ := os.ReadDir("/proc")
	var ticks int64
	for _, d := range dirs {
		if d.Name()[0] < '0' || d.Name()[0] > '9' {
			continue
		}
		raw, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(raw)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open || s[open+1:end] != "postgres" {
			continue
		}
		fields := strings.Fields(s[end+1:])
		if len(fields) < 15 {
			continue
		}
		for _, f := range fields[11:15] {
			n, _ := strconv.ParseInt(f, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * clockTick
}

// connectAdmin connects to the server of a -database-url for this command's
// own statements: without the pool settings (pool_max_conns, …) that the URL
// may carry for the service, which a single connection does not take.
func connectAdmin(ctx context.Context, serverURL string) (*pgx.Conn, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, err
	}
	// The other parameters are kept as written: re-encoding them would turn
	// options=-c%20name%3Dvalue into options=-c+name%3Dvalue, which pgx
	// does not read as a space.
	var kept []string
	for _, kv := range strings.Split(u.RawQuery, "&") {
		if kv != "" && !strings.HasPrefix(kv, "pool_") {
			kept = append(kept, kv)
		}
	}
	u.RawQuery = strings.Join(kept, "&")
	return pgx.Connect(ctx, u.String())
}
