//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Inside the sandbox: the files of the run are in /work (a size-limited
// tmpfs, the current directory and HOME), /tmp is another one, and everything
// else is read-only.
const (
	workDir       = "/work"
	innerUID      = 1000
	innerGID      = 1000
	innerUserName = "sandbox"
	shmBytes      = 8 << 20
)

// Synthetic /etc files: the host's are not shown.
var etcFiles = map[string]string{
	"passwd": "root:x:0:0:root:/root:/usr/sbin/nologin\n" +
		innerUserName + ":x:" + strconv.Itoa(innerUID) + ":" + strconv.Itoa(innerGID) + ":" + innerUserName + ":" + workDir + ":/usr/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
	"group":         "root:x:0:\n" + innerUserName + ":x:" + strconv.Itoa(innerGID) + ":\nnogroup:x:65534:\n",
	"hosts":         "127.0.0.1\tlocalhost\n::1\tlocalhost\n",
	"nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
}

// Host files and directories shown read-only when present.
var (
	etcCopied    = []string{"/etc/ld.so.cache", "/etc/localtime"}
	etcBound     = []string{"/etc/ssl", "/etc/alternatives"}
	devicesBound = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"}
)

// hostSource is something of the host the new root shows: a directory or
// device bound from an O_PATH descriptor (opened while the launcher could still
// reach it), a symbolic link recreated, or a small file copied.
type hostSource struct {
	path   string // where it goes, relative to the new root
	fd     int    // bind source; -1 if none
	link   string // symlink target
	data   []byte // copied content
	isDir  bool
	device bool
}

// enterPrivateRoot runs in the new user, mount, pid, net, ipc and uts
// namespaces. It builds a tmpfs root over the run directory (in this mount
// namespace only), switches to the unprivileged ids, pivots into the new root
// and makes it read-only.
func enterPrivateRoot(spec *launchSpec) error {
	script, err := os.ReadFile(filepath.Join(spec.RunDir, "script.py"))
	if err != nil {
		return err
	}
	test, err := os.ReadFile(filepath.Join(spec.RunDir, "test_case.py"))
	if err != nil {
		return err
	}
	sources, err := collectSources(spec)
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range sources {
			if s.fd >= 0 {
				_ = unix.Close(s.fd)
			}
		}
	}()

	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
	}
	owner := fmt.Sprintf("uid=%d,gid=%d", spec.UID, spec.GID)
	if err := unix.Mount("tmpfs", spec.RunDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=4m,nr_inodes=4096,mode=0755,"+owner); err != nil {
		return fmt.Errorf("tmpfs root: %w", err)
	}
	if err := unix.Chdir(spec.RunDir); err != nil {
		return err
	}
	// From here on, paths are relative to the new root (the current
	// directory), and files are created as the unprivileged user.
	if err := keepCapabilities(); err != nil {
		return err
	}
	if err := setIDs(spec); err != nil {
		return err
	}
	if err := raiseEffectiveCapabilities(); err != nil {
		return err
	}

	for _, dir := range []string{"etc", "dev", "proc", "tmp", "work"} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
	}
	for name, content := range etcFiles {
		if err := os.WriteFile("etc/"+name, []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := unix.Mount("tmpfs", "dev", "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755,"+owner); err != nil {
		return fmt.Errorf("tmpfs /dev: %w", err)
	}
	for _, l := range [][2]string{{"/proc/self/fd", "dev/fd"}, {"/proc/self/fd/0", "dev/stdin"}, {"/proc/self/fd/1", "dev/stdout"}, {"/proc/self/fd/2", "dev/stderr"}} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			return err
		}
	}
	if err := os.Mkdir("dev/shm", 0o755); err != nil {
		return err
	}
	if err := mountTmpfs("dev/shm", shmBytes, "1777", owner); err != nil {
		return err
	}
	if spec.Proc {
		err := unix.Mount("proc", "proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		switch {
		case errors.Is(err, unix.EPERM):
			// A host whose /proc has masked paths (Docker) refuses a new
			// procfs to a user namespace; run without one (the probe says so).
		case err != nil:
			return fmt.Errorf("procfs: %w", err)
		default:
			// No nested user namespaces: they would give the test code
			// capabilities over new namespaces, the kernel's largest attack
			// surface for unprivileged code. The limit is this namespace's.
			if err := os.WriteFile("proc/sys/user/max_user_namespaces", []byte("0"), 0); err != nil {
				return fmt.Errorf("limiting nested user namespaces: %w", err)
			}
			// The kernel counts inotify and fanotify instances and marks
			// per user at every level of user namespaces: a run's count at
			// the top level is that of the server's user (the namespace's
			// creator), whatever the run's own uid, against the host's
			// limits (128 instances by default). Cap each run's share.
			for _, l := range userNSLimits {
				err := os.WriteFile("proc/sys/user/"+l.name, []byte(strconv.Itoa(l.max)), 0)
				if errors.Is(err, fs.ErrNotExist) {
					continue // a kernel without inotify or fanotify for users
				}
				if err != nil {
					return fmt.Errorf("limiting %s: %w", l.name, err)
				}
			}
			// Read-only to the test code: it may not write its
			// oom_score_adj back down to the server's (the launcher set
			// 1000; the kernel lets a process lower it to what it
			// inherited), nor any other knob of its own under /proc.
			if err := unix.Mount("", "proc", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
				return fmt.Errorf("procfs read-only: %w", err)
			}
		}
	}
	if err := mountTmpfs("tmp", spec.WorkBytes, "1777", owner); err != nil {
		return err
	}
	if err := mountTmpfs("work", spec.WorkBytes, "0755", owner); err != nil {
		return err
	}
	if err := os.WriteFile("work/script.py", script, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile("work/test_case.py", test, 0o644); err != nil {
		return err
	}
	// Last, so that an interpreter under /tmp is not hidden by the tmpfs.
	for _, s := range sources {
		if err := s.place(); err != nil {
			return err
		}
	}

	// pivot_root(".", ".") stacks the old root on the new one; detaching it
	// leaves nothing of the host but the read-only binds.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the host root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	for _, m := range []string{"/dev", "/"} {
		if err := unix.Mount("", m, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|noexecFor(m), ""); err != nil {
			return fmt.Errorf("making %s read-only: %w", m, err)
		}
	}
	return unix.Chdir(workDir)
}

func noexecFor(m string) uintptr {
	if m == "/dev" {
		return unix.MS_NOEXEC
	}
	return 0
}

func mountTmpfs(dir string, size int64, mode, owner string) error {
	opts := fmt.Sprintf("size=%d,nr_inodes=4096,mode=%s,%s", size, mode, owner)
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("tmpfs /%s: %w", dir, err)
	}
	return nil
}

// collectSources opens (O_PATH) or reads everything of the host the new root
// shows, while the launcher still has the server's view of the file system.
func collectSources(spec *launchSpec) ([]hostSource, error) {
	var out []hostSource
	add := func(path string, device bool) error {
		fi, err := os.Lstat(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel := path[1:]
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			out = append(out, hostSource{path: rel, fd: -1, link: target})
			return nil
		}
		fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			return fmt.Errorf("opening %s: %w", path, err)
		}
		out = append(out, hostSource{path: rel, fd: fd, isDir: fi.IsDir(), device: device})
		return nil
	}
	for _, d := range systemDirs {
		if err := add(d, false); err != nil {
			return nil, err
		}
	}
	for _, d := range etcBound {
		if err := add(d, false); err != nil {
			return nil, err
		}
	}
	for _, d := range spec.Binds {
		if err := add(d, false); err != nil {
			return nil, err
		}
	}
	for _, d := range devicesBound {
		if err := add(d, true); err != nil {
			return nil, err
		}
	}
	for _, f := range etcCopied {
		fi, err := os.Lstat(f)
		if err != nil {
			continue
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(f)
			if err != nil {
				return nil, err
			}
			out = append(out, hostSource{path: f[1:], fd: -1, link: target})
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		out = append(out, hostSource{path: f[1:], fd: -1, data: data})
	}
	return out, nil
}

// place puts s into the new root (the current directory).
func (s hostSource) place() error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return err
	}
	switch {
	case s.link != "":
		return os.Symlink(s.link, s.path)
	case s.data != nil:
		return os.WriteFile(s.path, s.data, 0o644)
	}
	if s.isDir {
		if err := os.MkdirAll(s.path, 0o755); err != nil {
			return err
		}
	} else if err := os.WriteFile(s.path, nil, 0o644); err != nil {
		return err
	}
	src := "/proc/self/fd/" + strconv.Itoa(s.fd)
	if err := unix.Mount(src, s.path, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding /%s: %w", s.path, err)
	}
	attr := uint64(unix.MOUNT_ATTR_NOSUID)
	if s.device {
		attr |= unix.MOUNT_ATTR_NOEXEC
	} else {
		attr |= unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NODEV
	}
	err := unix.MountSetattr(unix.AT_FDCWD, s.path, unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: attr})
	if errors.Is(err, unix.ENOSYS) {
		err = remountReadOnly(s.path, s.device)
	}
	if err != nil {
		return fmt.Errorf("restricting /%s: %w", s.path, err)
	}
	return nil
}

// remountReadOnly is the fallback for kernels before mount_setattr (5.12): a
// bind remount must repeat the flags the kernel locked on the source mount.
func remountReadOnly(path string, device bool) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return err
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_NOSUID)
	if device {
		flags |= unix.MS_NOEXEC
	} else {
		flags |= unix.MS_RDONLY | unix.MS_NODEV
	}
	for _, f := range [][2]int64{
		{unix.ST_NOEXEC, unix.MS_NOEXEC}, {unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if st.Flags&f[0] != 0 {
			flags |= uintptr(f[1])
		}
	}
	return unix.Mount("", path, "", flags, "")
}
