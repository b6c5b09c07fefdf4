package patch_test

import (
	"fmt"

	"github.com/vibegrapher/vibegrapher/domain/patch"
)

func ExampleApply() {
	code := "def greet(name):\n    return 'hello ' + name\n"
	// A model's patch: fenced, header numbers wrong, no file headers.
	diff := "```diff\n@@ -10,2 +10,2 @@\n def greet(name):\n-    return 'hello ' + name\n+    return f'hello {name}'\n```"
	out, err := patch.Apply(code, diff)
	fmt.Print(out, err)
	// Output:
	// def greet(name):
	//     return f'hello {name}'
	// <nil>
}

func ExampleApply_error() {
	code := "x = 1\nprint(x)\nx = 1\nprint(x)\n"
	_, err := patch.Apply(code, "@@ @@\n x = 1\n-print(x)\n+print(x + 1)\n")
	fmt.Println(err)
	// Output:
	// hunk 1 (@@ @@): context/removed lines match 2 places in the current code (lines 1 and 3); include more unchanged lines around the change so that it matches only one
}

func ExampleUnified() {
	fmt.Print(patch.Unified("a = 1\nb = 2\n", "a = 1\nb = 3\n", "app.py"))
	// Output:
	// --- a/app.py
	// +++ b/app.py
	// @@ -1,2 +1,2 @@
	//  a = 1
	// -b = 2
	// +b = 3
}
