//go:build linux

package sandbox

// NewWithoutNamespaces is New on a host that (as far as the probe is told)
// cannot make user namespaces: a Docker container under its default seccomp
// profile, say.
func NewWithoutNamespaces(cfg Config) (*Runner, error) { return newRunner(cfg, true) }
