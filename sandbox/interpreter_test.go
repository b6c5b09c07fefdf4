//go:build linux

package sandbox_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vibegrapher/vibegrapher/sandbox"
)

// Interpreters outside /usr must be shown to the run, and only they: a
// virtualenv like the Docker image's /opt/sandbox-python (whose
// site-packages holds openai-agents), and pyenv versions.
func TestInterpreters(t *testing.T) {
	venv := filepath.Join(t.TempDir(), "sandbox-python")
	if out, err := exec.Command("/usr/bin/python3", "-m", "venv", "--without-pip", venv).CombinedOutput(); err != nil {
		t.Fatalf("venv: %v %s", err, out)
	}
	site, err := filepath.Glob(filepath.Join(venv, "lib", "python3*", "site-packages"))
	if err != nil || len(site) != 1 {
		t.Fatalf("site-packages: %v %v", site, err)
	}
	if err := os.WriteFile(filepath.Join(site[0], "vg_installed.py"), []byte("VALUE = 42\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	interpreters := map[string]string{"venv": filepath.Join(venv, "bin", "python3")}
	pyenv, _ := filepath.Glob("/root/.pyenv/versions/3.1[23]*/bin/python3")
	for _, p := range pyenv {
		interpreters["pyenv "+filepath.Base(filepath.Dir(filepath.Dir(p)))] = p
	}
	for name, python := range interpreters {
		t.Run(name, func(t *testing.T) {
			r, err := sandbox.New(sandbox.Config{Python: python, ScratchRoot: filepath.Join(t.TempDir(), "media")})
			if err != nil {
				t.Fatal(err)
			}
			if !r.Features().Isolated {
				t.Fatalf("not isolated: %s", r.Features())
			}
			test := "import sys\nprint(sys.version.split()[0], sys.prefix)\nassert add(1, 2) == 3\nimport json, ssl, sqlite3, decimal\n"
			if name == "venv" {
				test += "import vg_installed\nassert vg_installed.VALUE == 42\n"
			}
			res := r.Run(context.Background(), "def add(a, b):\n    return a + b\n", test, 0)
			t.Logf("%s: %s %q %q", r.Python(), res.Status, res.Stdout, res.Stderr)
			if res.Status != sandbox.StatusPassed {
				t.Fatalf("status %s", res.Status)
			}
			if name == "venv" && !strings.Contains(res.Stdout, venv) {
				t.Errorf("not the venv's interpreter")
			}
		})
	}
}

// An interpreter under the scratch root would expose other runs: it is not
// shown, so no run can start, and the probe says why.
func TestInterpreterUnderScratchRootRefused(t *testing.T) {
	scratch := filepath.Join(t.TempDir(), "media")
	venv := filepath.Join(scratch, "venv")
	if out, err := exec.Command("/usr/bin/python3", "-m", "venv", "--without-pip", "--copies", venv).CombinedOutput(); err != nil {
		t.Fatalf("venv: %v %s", err, out)
	}
	r, err := sandbox.New(sandbox.Config{Python: filepath.Join(venv, "bin", "python3"), ScratchRoot: scratch})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("features: %s", r.Features())
	res := r.Run(context.Background(), "", "pass", 0)
	if r.Features().Isolated || res.Status != sandbox.StatusError || !strings.Contains(strings.ToLower(res.Error), "no such file or directory") {
		t.Fatalf("got %s %q", res.Status, res.Error)
	}
}
