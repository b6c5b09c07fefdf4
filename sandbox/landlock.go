//go:build linux

package sandbox

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Landlock is the file-system and network guard of the unisolated tier (no
// namespaces). With a private mount namespace it would only restate that
// namespace's view, so the isolated tier does not use it.
type landlockSpec struct {
	ABI   int      `json:"abi"`
	Read  []string `json:"read"`  // read and execute beneath
	Write []string `json:"write"` // anything beneath
}

// landlockAttr is struct landlock_ruleset_attr up to ABI 6 (the kernel takes
// the size it is given).
type landlockAttr struct {
	handledFS  uint64
	handledNet uint64
	scoped     uint64
}

const (
	llRead = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR
	// Rights that may be granted on a file (not a directory).
	llFileRights = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE |
		unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_TRUNCATE
)

// landlockABI returns the Landlock ABI version the kernel offers, 0 if none.
func landlockABI() int {
	v, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if e != 0 {
		return 0
	}
	return int(v)
}

// handledFS is every file-system right of the ABI except ioctl on devices
// (isatty on /dev/null must keep working).
func handledFS(abi int) uint64 {
	rights := uint64(1<<13 - 1) // ABI 1: EXECUTE .. MAKE_SYM
	if abi >= 2 {
		rights |= unix.LANDLOCK_ACCESS_FS_REFER
	}
	if abi >= 3 {
		rights |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	return rights
}

func (l *landlockSpec) restrictSelf() error {
	attr := landlockAttr{handledFS: handledFS(l.ABI)}
	size := unsafe.Sizeof(attr.handledFS)
	if l.ABI >= 4 {
		attr.handledNet = unix.LANDLOCK_ACCESS_NET_BIND_TCP | unix.LANDLOCK_ACCESS_NET_CONNECT_TCP
		size += unsafe.Sizeof(attr.handledNet)
	}
	if l.ABI >= 6 {
		attr.scoped = unix.LANDLOCK_SCOPE_SIGNAL | unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
		size += unsafe.Sizeof(attr.scoped)
	}
	rfd, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), size, 0)
	if e != 0 {
		return fmt.Errorf("create ruleset: %w", e)
	}
	defer unix.Close(int(rfd))
	add := func(path string, rights uint64) error {
		fi, err := os.Stat(path)
		if err != nil {
			return nil // nothing there to allow
		}
		if !fi.IsDir() {
			rights &= llFileRights
		}
		fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening %s: %w", path, err)
		}
		defer unix.Close(fd)
		rule := unix.LandlockPathBeneathAttr{Allowed_access: rights & attr.handledFS, Parent_fd: int32(fd)}
		_, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, rfd, unix.LANDLOCK_RULE_PATH_BENEATH, uintptr(unsafe.Pointer(&rule)), 0, 0, 0)
		if e != 0 {
			return fmt.Errorf("rule for %s: %w", path, e)
		}
		return nil
	}
	for _, p := range l.Read {
		if err := add(p, llRead); err != nil {
			return err
		}
	}
	for _, p := range l.Write {
		if err := add(p, attr.handledFS); err != nil {
			return err
		}
	}
	if _, _, e := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, rfd, 0, 0); e != 0 {
		return fmt.Errorf("restrict self: %w", e)
	}
	return nil
}
