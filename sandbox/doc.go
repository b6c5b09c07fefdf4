// Package sandbox runs a project's Python test cases (SPEC.md §6), which are
// hostile by assumption, with the kernel's own means and no helper binary
// other than the Python interpreter.
//
// # What a run is
//
// The project code is written to script.py and the test code to
// test_case.py in a fresh directory under Config.ScratchRoot. Python (-I -B
// -u, environment exactly PATH=/usr/bin:/bin, HOME, LANG=C.UTF-8) executes
// script.py as the module "script" (its `if __name__ == "__main__":` block
// does not run), copies what `from script import *` would give into a fresh
// __main__ module and executes test_case.py there. Exit status 0 is
// StatusPassed; an exception (traceback in Stderr, runner frames removed),
// a syntax error or a non-zero exit is StatusFailed; the wall-clock limit
// (or the CPU-time limit, timeout+1 s) is StatusTimeout; a MemoryError under
// the address-space limit is StatusError "memory limit exceeded (512 MB)"
// (the runner caps glibc at two malloc arenas and threads at 4 MiB stacks,
// so that threaded code is not refused for address space it never uses);
// a sandbox that could not be set up is StatusError "sandbox unavailable:
// ...". Each output stream keeps its first Config.OutputLimit bytes; more is
// drained, counted and replaced by a "[output truncated: ...]" line.
//
// # How it is confined
//
// The server binary is its own launcher: Run re-executes /proc/self/exe with
// VIBEGRAPHER_SANDBOX_LAUNCHER=1 (Main, called first in main, recognises
// it) in new user, pid, network, mount, ipc and uts namespaces. The run's
// user is uid/gid 1000 inside, mapped to the server's uid outside, or, when
// the server is root, to a uid of its own among 65000-65511 (one per run at
// once; 65534 shared where the server's user namespace does not map that
// range), so the test code is never host root and RLIMIT_NPROC counts it.
// The launcher carries only the capabilities it needs (ambient, inside its
// namespace) and, as pid 1:
//
//   - builds a new root on a tmpfs: /usr, /bin, /lib*, /sbin, /etc/ssl,
//     /etc/alternatives and the interpreter's own directories (a virtualenv,
//     a pyenv prefix) bound read-only from descriptors opened beforehand;
//     synthetic /etc/passwd, group, hosts, nsswitch.conf; /dev with null,
//     zero, full, random, urandom, and stdin, stdout, stderr and fd as links
//     into /proc/self/fd; a procfs of the new pid namespace (left
//     out where the host refuses one, as Docker's masked /proc does); /work
//     (the run's files, the current directory and HOME) and /tmp as 32 MiB
//     tmpfs, /dev/shm as 8 MiB; then pivot_root, the host root detached and
//     the new root remounted read-only. Nothing of the host's files, the
//     scratch root, other runs or the server's environment is reachable,
//     and writes land in memory that vanishes with the run;
//   - sets the hostname, caps the namespace's inotify (4 instances, 1024
//     watches) and fanotify (none) through the new procfs where there is one,
//     forbids nested user namespaces (max_user_namespaces
//     0 through that procfs, and always a seccomp filter
//     of its own: clone and unshare with CLONE_NEWUSER fail with EPERM,
//     clone3 with ENOSYS, other ABIs' system calls with EPERM; it also
//     refuses memfd_create, shmget and epoll, below), raises
//     oom_score_adj to 1000 (the kernel kills the run before
//     the server or the database), sets no_new_privs and the limits
//     RLIMIT_CPU, NPROC (64), FSIZE (16 MiB), NOFILE (256), CORE, MEMLOCK and
//     MSGQUEUE, switches to the run's user, drops every capability (bounding
//     set included) and re-arms the parent-death signal;
//   - sets RLIMIT_AS last (the Go runtime cannot live under it) and execs
//     Python, which becomes pid 1: when it ends, or when Run kills it at the
//     timeout, the kernel kills every process of the run. The network
//     namespace has only a loopback interface that is down.
//
// Output goes through two pipes the server reads. They belong to the run's
// host user, so a program may open them again by name (open("/dev/stdout"),
// a logging handler on /dev/stderr, a shell-out's "> /dev/stdout"): reopening
// /proc/self/fd/1 checks the pipe's owner and 0600 mode, and a server running
// as root is unmapped (nobody) in the run's user namespace. This needs the
// run's procfs; where the host refuses one (Docker), /dev/stdout leads nowhere.
//
// New probes this once: it starts the launcher in each namespace, then runs a
// probe program and checks from the outside what it could not do (reach a
// TCP listener of the server, read or write a canary beside the run
// directories, see other processes) and which limits it saw; its
// capabilities it reads from /proc/self/status, or with capget(2) where the
// run has no procfs. Features
// reports the findings; the server logs Features.String at start.
//
// # Choices
//
// Bubblewrap would do the namespace work but is one more binary for the
// Docker image; the launcher does the same in a few hundred lines and costs
// about the same (see BenchmarkRunPass vs BenchmarkBarePython). Cgroups are not used:
// on a fly.io machine running the image as a non-root user they are
// usually not writable, and here (the memory controller bound to a cgroup v1
// hierarchy whose every group belongs to the VM's init, cgroup v2 with only
// hugetlb) placing runs would mean writing into the cgroup of whoever started
// the server; RLIMIT_AS per process, RLIMIT_NPROC and oom_score_adj bound a run
// instead. What they leave out is kernel memory: pipe and socket buffers count
// against no rlimit (RLIMIT_NOFILE and the kernel's per-user pipe quota,
// fs.pipe-user-pages-soft, bound them), so a run may pin tens of megabytes per
// process beyond SANDBOX_MEMORY_MB, with oom_score_adj 1000 making its
// processes the out-of-memory killer's first choice.
//
// # What runs at once share
//
// Since Linux 5.14 RLIMIT_NPROC counts per user namespace, so each run has its
// own 64 processes whatever its host uid (on 6.18: a run holding 63 processes
// left the run beside it its 20 forks). Other accounting is per host uid
// across every namespace: the pipe quota (past 16384 pages a uid's new pipes
// get 2 pages and cannot grow: one run of one process, 64 pipes grown to
// 1 MiB, left every other run of its uid 8 KiB pipes), key quotas (200 keys,
// 20000 bytes), epoll watches, descriptors in flight over Unix sockets. A
// root server gives each run at once its own uid (runids.go), so runs share
// none of these. A server that is not root (the Docker image, fly.io: uid
// 10001) can map only its own uid: its runs share these quotas with each
// other and with the server itself.
//
// Epoll watches are the server's network: Go's poller adds every socket to an
// epoll instance, and when the uid's fs.epoll.max_user_watches (4 % of RAM at
// 184 bytes a watch: 5.49M on this 24 GB machine, at most 233K on a 1 GB VM,
// 58K on 256 MB) is used up, every new connection fails with ENOSPC,
// accepted (the HTTP server retries: cmd/vibegrapher's listener) or dialled
// (PostgreSQL, the model), until the run ends. No rlimit bounds a run's share:
// a watch is a file and a descriptor number, and a file passed to another
// process outlives its numbers, so 256 descriptors and 64 processes bound
// nothing. One run of one process and four holders took all 5,491,489 watches
// of its uid in about 10 s (TestHostileEpollWatches; under 1 s for a small
// VM's quota). The seccomp filter therefore refuses epoll_create and
// epoll_create1 (ENOSYS): a run takes no watch at all, and Python's selectors,
// hence asyncio and openai-agents' HTTP client, fall back to poll(2), which
// the kernel does not count. The other shared quotas only slow or refuse the
// run's own user, not the server: past the pipe quota the server's new output
// pipes get 8 KiB (still read in full); the server uses no keys and passes no
// descriptors. The run's processes also count towards the server uid's own
// RLIMIT_NPROC (the kernel counts at each level of user namespaces): 64 per
// run at once, against a default of half the kernel's max_threads (about
// 1000 on 256 MB), where TEST_WORKERS is 1.
//
// inotify and fanotify count at every level of user
// namespaces, the top one being the server's user whatever the run's uid,
// against the host's 128 instances: one run took all 128, leaving other runs
// and the server (root: every root process of the host) none. Each run's
// namespace caps its own share (4 instances, no fanotify) where it has a
// procfs; where it has none (Docker) a run can still take them all. Landlock is not used in
// the isolated tier: the mount namespace already shows nothing but what
// Landlock rules would allow, and the network and signal scopes duplicate the
// network and pid namespaces.
//
// In a Docker container the isolated tier needs a seccomp profile allowing
// clone, mount, umount2, pivot_root, sethostname and mount_setattr without
// CAP_SYS_ADMIN (deploy/seccomp.json, used by docker-compose.yml); it runs
// there without a fresh /proc, which Docker's masked /proc forbids (the pid
// namespace still hides every other process: the run sees no /proc at all).
// Where user namespaces are unavailable (a Docker container under the
// default seccomp profile) New reports "sandbox unavailable" unless
// Config.AllowUnisolated, in which case runs get the unisolated tier, logged
// at ERROR: the same launcher without namespaces sets the rlimits,
// no_new_privs, the run's own uid (as above: there RLIMIT_NPROC counts per
// host uid, so this also keeps runs' processes apart) when the server is
// root, and Landlock where the kernel has it (reads: system directories and
// the interpreter; writes: the run directory; no TCP; no signals or abstract
// sockets outside the run).
// Processes that leave the run's process group may survive it there.
//
// On fly.io (a Firecracker VM whose image runs as a non-root user with
// unprivileged user namespaces) the isolated tier works as it does here as
// root: the run's user maps to the server's own uid, setgroups is denied so
// the server's supplementary groups stay (nothing they could open is
// mounted).
package sandbox
