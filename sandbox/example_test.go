//go:build linux

package sandbox_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vibegrapher/vibegrapher/sandbox"
)

// A server calls sandbox.Main first thing in main (so that the binary can act
// as the sandbox launcher), makes one Runner at start and runs test cases
// with it.
func ExampleRunner_Run() {
	// func main() { sandbox.Main(); ... }
	scratch, _ := os.MkdirTemp("", "media-")
	defer os.RemoveAll(scratch)
	r, err := sandbox.New(sandbox.Config{
		ScratchRoot:     filepath.Join(scratch, "runs"),
		AllowUnisolated: true, // a development machine may lack namespaces
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	project := `
def greet(name):
    return f"Hello, {name}!"

if __name__ == "__main__":
    print(greet("main"))  # not run by the sandbox
`
	res := r.Run(context.Background(), project, `assert greet("Ada") == "Hello, Ada!"
print(greet("test"))
`, 0)
	fmt.Println(res.Status)
	fmt.Print(res.Stdout)

	res = r.Run(context.Background(), project, `assert greet("Ada") == "Hi"`, 0)
	fmt.Println(res.Status, res.ExitCode)
	// Output:
	// passed
	// Hello, test!
	// failed 1
}
