//go:build linux

package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Host ids of runs. The kernel keeps some accounting per host uid across
// every user namespace: the pipe buffer quota (fs.pipe-user-pages-soft,
// 16384 pages: past it, the uid's new pipes get 2 pages and cannot grow),
// key quotas, epoll watches, file descriptors in flight over Unix sockets.
// Runs sharing a uid share those, so one run could leave the others
// one-page pipes. A server running as root can map any uid, so each run at
// once gets its own from runUIDFirst… (uid and gid the same number); a
// server that is not root can map only its own, which every run then
// shares (the package documentation says what remains).
const (
	runUIDFirst = 65000 // Debian policy reserves 65000-65533: no user has them
	runUIDCount = 512   // runs at once in one process before a run waits for an id
	sharedRunID = 65534 // nobody: the root server's runs' id where the range is not mapped
)

// runIDs hands out the host uid/gid of runs, one per run at once, the one
// least recently released first (so a run never gets an id whose last
// processes could still hold pipes).
type runIDs struct {
	free chan int
}

func newRunIDs(first, count int) *runIDs {
	p := &runIDs{free: make(chan int, count)}
	for i := range count {
		p.free <- first + i
	}
	return p
}

// acquire takes an id, waiting while every id is in use; release gives it
// back once the run's processes are gone.
func (p *runIDs) acquire(ctx context.Context) (int, error) {
	select {
	case id := <-p.free:
		return id, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (p *runIDs) release(id int) { p.free <- id }

// mappable reports whether ids first..first+count-1 are all mapped in this
// process's user namespace (a root server in a container with a user
// namespace of its own may see only 0-65535, or fewer).
func mappable(mapFile string, first, count int) bool {
	f, err := os.Open(mapFile)
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) != 3 {
			continue
		}
		start, err1 := strconv.ParseUint(fields[0], 10, 32)
		n, err2 := strconv.ParseUint(fields[2], 10, 32)
		if err1 == nil && err2 == nil && uint64(first) >= start && uint64(first+count) <= start+n {
			return true
		}
	}
	return false
}

// runIDsText describes which host ids runs get (Features.RunIDs).
func runIDsText(p *runIDs, uid int) string {
	if p != nil {
		return fmt.Sprintf("%d-%d, one per run", runUIDFirst, runUIDFirst+runUIDCount-1)
	}
	return strconv.Itoa(uid) + ", shared by every run"
}
