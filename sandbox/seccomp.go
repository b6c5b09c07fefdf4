//go:build linux

package sandbox

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// restrictSyscalls installs the launcher's own seccomp filter, inherited by
// Python and everything it starts:
//   - clone and unshare with CLONE_NEWUSER fail with EPERM, and clone3 (whose
//     flags a filter cannot read) with ENOSYS, on which glibc falls back to
//     clone. Test code needs no user namespace of its own, and one would give
//     it every capability over new namespaces: the kernel's largest attack
//     surface for unprivileged code. A fresh /proc would let the launcher also
//     set the namespace's max_user_namespaces to 0, but a container whose
//     /proc has masked paths (Docker) refuses one; the filter holds either way.
//   - memfd_create fails with ENOSYS and shmget with EPERM: memory in an
//     unmapped memfd or a SysV segment counts against no RLIMIT_AS, so 64
//     processes could hold gigabytes past SANDBOX_MEMORY_MB. (POSIX shared
//     memory is in /dev/shm, a tmpfs of the run with a size.)
//   - epoll_create and epoll_create1 fail with ENOSYS: the kernel counts
//     epoll watches per host uid (fs.epoll.max_user_watches), and no rlimit
//     bounds a run's share, since a watch is a file and a descriptor number
//     and the files can outlive their numbers (passed to another process):
//     one run took the whole quota, 5.4M watches on a 24 GB machine, in
//     about 10 s. A server that is not root shares its uid with its runs,
//     and its own network poller then fails for every new socket. Python's
//     selectors (3.9 on) tries epoll at import and takes poll(2), which the
//     kernel does not count, when it fails, and asyncio with it.
//   - System calls of another ABI (i386, x32) are refused.
func restrictSyscalls() error {
	abi, ok := map[string]struct {
		arch uint32
		old  []uint32 // system calls only this ABI has, refused with ENOSYS
	}{
		"amd64": {unix.AUDIT_ARCH_X86_64, []uint32{213}}, // epoll_create (arm64 has only epoll_create1)
		"arm64": {unix.AUDIT_ARCH_AARCH64, nil},
	}[runtime.GOARCH]
	if !ok {
		return nil // no filter on other architectures: the probe still checks the rest
	}
	const (
		ld   = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		jset = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret  = unix.BPF_RET | unix.BPF_K
		// Jumps count from the next instruction. Offsets in struct seccomp_data:
		offNr   = 0
		offArch = 4
		offArg0 = 16 // low 32 bits of args[0] (little-endian)
	)
	allow := uint32(unix.SECCOMP_RET_ALLOW)
	eperm := uint32(unix.SECCOMP_RET_ERRNO) | uint32(unix.EPERM)
	enosys := uint32(unix.SECCOMP_RET_ERRNO) | uint32(unix.ENOSYS)
	prog := []unix.SockFilter{
		{Code: ld, K: offArch},
		{Code: jeq, Jt: 1, Jf: 0, K: abi.arch},
		{Code: ret, K: eperm},
		{Code: ld, K: offNr},
		{Code: jge, Jt: 0, Jf: 1, K: 0x40000000}, // x32 numbers
		{Code: ret, K: eperm},
	}
	refused := []struct{ nr, action uint32 }{
		{unix.SYS_MEMFD_CREATE, enosys},
		{unix.SYS_SHMGET, eperm},
		{unix.SYS_EPOLL_CREATE1, enosys},
		{unix.SYS_CLONE3, enosys},
	}
	for _, nr := range abi.old {
		refused = append(refused, struct{ nr, action uint32 }{nr, enosys})
	}
	for _, c := range refused { // if nr is c.nr, return its errno
		prog = append(prog,
			unix.SockFilter{Code: jeq, Jt: 0, Jf: 1, K: c.nr},
			unix.SockFilter{Code: ret, K: c.action})
	}
	// clone and unshare with CLONE_NEWUSER; this loads args[0], so it comes last.
	prog = append(prog,
		unix.SockFilter{Code: jeq, Jt: 1, Jf: 0, K: unix.SYS_CLONE},
		unix.SockFilter{Code: jeq, Jt: 0, Jf: 3, K: unix.SYS_UNSHARE},
		unix.SockFilter{Code: ld, K: offArg0},
		unix.SockFilter{Code: jset, Jt: 0, Jf: 1, K: unix.CLONE_NEWUSER},
		unix.SockFilter{Code: ret, K: eperm},
		unix.SockFilter{Code: ret, K: allow},
	)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	// no_new_privs is set already, so no privilege is needed.
	if _, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		return fmt.Errorf("seccomp filter: %w", errno)
	}
	runtime.KeepAlive(prog)
	return nil
}
