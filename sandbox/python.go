package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// systemPython is preferred over a pyenv shim: a shim is a shell script that
// costs ~130 ms a start and reads the server's environment to pick a version.
const systemPython = "/usr/bin/python3"

// memoryExitCode is the status the runner program exits with after a
// MemoryError escaped the test, so the server can name the cause.
const memoryExitCode = 86

// runnerProgram runs test_case.py in the namespace `from script import *`
// gives: script.py is executed as the module "script" (registered in
// sys.modules, so `import script` in the test finds it, and its
// `if __name__ == "__main__":` block does not run), its public names (or
// __all__) are copied into a fresh __main__ module, and the test code is
// compiled as "test_case.py" and executed there. Tracebacks leave out the
// runner's own frames. argv[1] is the directory holding both files, "" for
// the current one: the files are opened by relative path because in the
// unisolated tier the run's user may not be able to walk to the directory.
var runnerProgram = `import sys
def _vg_limit_address_space_use():
    # RLIMIT_AS counts reserved address space, not memory: glibc reserves
    # 64 MiB per malloc arena (up to one per thread) and each thread's stack
    # is RLIMIT_STACK (8 MiB). Fewer arenas and 4 MiB thread stacks let
    # threaded code live under the limit.
    import _thread
    _thread.stack_size(4 * 1024 * 1024)
    try:
        import ctypes
        ctypes.CDLL(None).mallopt(-8, 2)  # M_ARENA_MAX
    except Exception:
        pass
_vg_limit_address_space_use()
del _vg_limit_address_space_use
def _vg_run():
    import builtins, importlib.machinery, os, types
    work = sys.argv[1]
    sys.argv = ["test_case.py"]
    def report(exc):
        import traceback
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb)
    try:
        with open("test_case.py", encoding="utf-8") as f:
            test_source = f.read()
        with open("script.py", encoding="utf-8") as f:
            script_source = f.read()
        sys.path.insert(0, work or os.curdir)
        script_path = os.path.join(work, "script.py")
        script = types.ModuleType("script")
        script.__spec__ = importlib.machinery.ModuleSpec("script", None, origin=script_path)
        script.__file__ = script_path
        sys.modules["script"] = script
        exec(compile(script_source, script_path, "exec"), script.__dict__)
        del script_source
        main = types.ModuleType("__main__")
        main.__file__ = os.path.join(work, "test_case.py")
        main.__builtins__ = builtins
        names = getattr(script, "__all__", None)
        if names is None:
            names = [n for n in vars(script) if not n.startswith("_")]
        for n in names:
            setattr(main, n, getattr(script, n))
        sys.modules["__main__"] = main
        code = compile(test_source, "test_case.py", "exec")
        del test_source
        exec(code, main.__dict__)
    except SystemExit:
        raise
    except MemoryError as exc:
        try:
            report(exc)
        finally:
            sys.exit(` + strconv.Itoa(memoryExitCode) + `)
    except BaseException as exc:
        report(exc)
        sys.exit(1)
_vg_run()
`

// pythonInfo is what the interpreter says about itself; its directories must
// be visible inside the sandbox.
type pythonInfo struct {
	Executable     string   `json:"executable"`
	Version        string   `json:"version"`
	Prefix         string   `json:"prefix"`
	BasePrefix     string   `json:"base_prefix"`
	ExecPrefix     string   `json:"exec_prefix"`
	BaseExecPrefix string   `json:"base_exec_prefix"`
	Path           []string `json:"path"`
}

const pythonInfoProgram = `import json, sys
print(json.dumps({"executable": sys.executable, "version": sys.version.split()[0],
    "prefix": sys.prefix, "base_prefix": sys.base_prefix,
    "exec_prefix": sys.exec_prefix, "base_exec_prefix": sys.base_exec_prefix,
    "path": sys.path}))`

// resolvePython turns SANDBOX_PYTHON into an absolute interpreter path. A
// pyenv shim is replaced by the system interpreter when there is one, else by
// the interpreter the shim picks.
func resolvePython(name string) (path, note string, err error) {
	if name == "" {
		name = "python3"
	}
	path = name
	if !filepath.IsAbs(path) {
		if path, err = exec.LookPath(name); err != nil {
			return "", "", fmt.Errorf("python interpreter %q: %w", name, err)
		}
	}
	if path, err = filepath.Abs(path); err != nil {
		return "", "", err
	}
	if !isShim(path) {
		return path, "", nil
	}
	if fi, err := os.Stat(systemPython); err == nil && fi.Mode().IsRegular() {
		return systemPython, fmt.Sprintf("%s is a pyenv shim; using %s", path, systemPython), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		return "", "", fmt.Errorf("resolving pyenv shim %s: %w", path, err)
	}
	real := strings.TrimSpace(string(out))
	if !filepath.IsAbs(real) {
		return "", "", fmt.Errorf("pyenv shim %s names no interpreter (%q)", path, real)
	}
	return real, fmt.Sprintf("%s is a pyenv shim; using %s", path, real), nil
}

// isShim reports whether path is a pyenv-style shell-script shim rather than
// an interpreter.
func isShim(path string) bool {
	if strings.Contains(path, "/shims/") {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := f.Read(head)
	head = head[:n]
	return bytes.HasPrefix(head, []byte("#!")) && bytes.Contains(head, []byte("pyenv"))
}

// queryPython asks the interpreter for its prefixes and module path, running
// it the way the sandbox will (-I: no user site, no PYTHON* variables).
func queryPython(python string) (pythonInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-I", "-B", "-c", pythonInfoProgram)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
	cmd.Dir = "/"
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return pythonInfo{}, fmt.Errorf("running %s: %w: %s", python, err, strings.TrimSpace(stderr.String()))
	}
	var info pythonInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return pythonInfo{}, fmt.Errorf("reading %s's paths: %w", python, err)
	}
	return info, nil
}

// systemDirs are mounted read-only into every sandbox root.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// interpreterDirs lists the directories outside the system ones that the
// interpreter needs (a pyenv prefix, a virtualenv, site-packages added by .pth
// files). A directory that would expose the scratch root (and so other runs)
// or the whole file system, or that would land on the sandbox's own /proc,
// /dev or /work, is refused and reported.
func interpreterDirs(python string, info pythonInfo, scratchRoot string) (dirs, refused []string) {
	candidates := []string{filepath.Dir(python)}
	if real, err := filepath.EvalSymlinks(python); err == nil {
		candidates = append(candidates, filepath.Dir(real))
	}
	candidates = append(candidates, info.Prefix, info.BasePrefix, info.ExecPrefix, info.BaseExecPrefix)
	candidates = append(candidates, info.Path...)
	var keep []string
	for _, c := range candidates {
		if c == "" || !filepath.IsAbs(c) {
			continue
		}
		c = filepath.Clean(c)
		fi, err := os.Stat(c)
		if err != nil {
			// sys.path names zip files that do not exist; skip them.
			continue
		}
		if !fi.IsDir() {
			c = filepath.Dir(c)
		}
		if underAny(c, systemDirs) {
			continue
		}
		if c == "/" || within(scratchRoot, c) || within(c, scratchRoot) || underAny(c, []string{"/proc", "/dev", workDir}) {
			refused = append(refused, c)
			continue
		}
		keep = append(keep, c)
	}
	slices.Sort(keep)
	keep = slices.Compact(keep)
	// Drop directories already inside another kept one.
	for _, c := range keep {
		if !underAny(c, slices.DeleteFunc(slices.Clone(keep), func(o string) bool { return o == c })) {
			dirs = append(dirs, c)
		}
	}
	slices.Sort(refused)
	return dirs, slices.Compact(refused)
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func underAny(path string, dirs []string) bool {
	for _, d := range dirs {
		if within(path, d) {
			return true
		}
	}
	return false
}
