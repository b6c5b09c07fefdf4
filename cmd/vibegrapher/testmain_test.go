package main

import (
	"os"
	"testing"

	"github.com/vibegrapher/vibegrapher/sandbox"
)

// The test binary is also the sandbox's launcher, as the vibegrapher binary
// is (main calls sandbox.Main). Without this, the `all` role's sandbox probe
// started the test binary again as its launcher, and that child ran every
// test of the package, leaving their databases behind when it was killed.
func TestMain(m *testing.M) {
	sandbox.Main()
	os.Exit(m.Run())
}
