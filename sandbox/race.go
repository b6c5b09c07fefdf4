//go:build race

package sandbox

// raceBuild is true in binaries built with -race (the tests). ThreadSanitizer
// allocates from its own threads at any moment, so a race-built launcher
// cannot set RLIMIT_AS on itself and still reach execve: it has
// util-linux's prlimit set the limit and exec Python instead.
const raceBuild = true
