package api_test

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"

	events "github.com/vibegrapher/vibegrapher/domain/event"
	"github.com/vibegrapher/vibegrapher/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.Main() // the test binary is also the sandbox's launcher
	code := m.Run()
	if code == 0 {
		code = checkEveryEventWasValidated()
	}
	os.Exit(code)
}

// validated records the events checkEvent saw, by name.
var validated sync.Map

// checkEveryEventWasValidated: when the whole package ran, every event type
// of domain/event was emitted by some test and checked against the AsyncAPI
// document, so the check covers the whole document.
func checkEveryEventWasValidated() int {
	for _, name := range []string{"test.run", "test.skip"} {
		if f := flag.Lookup(name); f == nil || f.Value.String() != "" {
			return 0 // part of the package ran
		}
	}
	if testing.Short() {
		return 0
	}
	code := 0
	for _, ev := range events.All() {
		if _, ok := validated.Load(ev.EventName()); !ok {
			fmt.Fprintf(os.Stderr, "no api test emitted %s: its AsyncAPI schema is unchecked\n", ev.EventName())
			code = 1
		}
	}
	if code == 0 && testing.Verbose() {
		fmt.Fprintf(os.Stderr, "every one of the %d event types was emitted and checked against the AsyncAPI document\n", len(events.All()))
	}
	return code
}
