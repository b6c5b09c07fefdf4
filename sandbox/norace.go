//go:build !race

package sandbox

// raceBuild is false in the server: the launcher sets RLIMIT_AS itself just
// before it execs Python.
const raceBuild = false
