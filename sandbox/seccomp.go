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
//   - System calls of another ABI (i386, x32) are refused.
func restrictSyscalls() error {
	arch, ok := map[string]uint32{"amd64": unix.AUDIT_ARCH_X86_64, "arm64": unix.AUDIT_ARCH_AARCH64}[runtime.GOARCH]
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
		/* 0 */ {Code: ld, K: offArch},
		/* 1 */ {Code: jeq, Jt: 1, Jf: 0, K: arch},
		/* 2 */ {Code: ret, K: eperm},
		/* 3 */ {Code: ld, K: offNr},
		/* 4 */ {Code: jge, Jt: 0, Jf: 1, K: 0x40000000}, // x32 numbers
		/* 5 */ {Code: ret, K: eperm},
		/* 6 */ {Code: jeq, Jt: 8, Jf: 0, K: unix.SYS_MEMFD_CREATE}, // → 15
		/* 7 */ {Code: jeq, Jt: 5, Jf: 0, K: unix.SYS_SHMGET}, // → 13
		/* 8 */ {Code: jeq, Jt: 2, Jf: 0, K: unix.SYS_CLONE},
		/* 9 */ {Code: jeq, Jt: 1, Jf: 0, K: unix.SYS_UNSHARE},
		/* 10 */ {Code: jeq, Jt: 4, Jf: 5, K: unix.SYS_CLONE3},
		/* 11 */ {Code: ld, K: offArg0},
		/* 12 */ {Code: jset, Jt: 0, Jf: 1, K: unix.CLONE_NEWUSER},
		/* 13 */ {Code: ret, K: eperm},
		/* 14 */ {Code: ret, K: allow},
		/* 15 */ {Code: ret, K: enosys},
		/* 16 */ {Code: ret, K: allow},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	// no_new_privs is set already, so no privilege is needed.
	if _, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		return fmt.Errorf("seccomp filter: %w", errno)
	}
	runtime.KeepAlive(prog)
	return nil
}
