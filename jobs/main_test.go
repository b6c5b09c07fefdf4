package jobs_test

import (
	"os"
	"testing"

	"github.com/vibegrapher/vibegrapher/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.Main() // the test binary is also the sandbox's launcher
	os.Exit(m.Run())
}
