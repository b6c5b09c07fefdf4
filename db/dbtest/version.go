package dbtest

import "runtime/debug"

// riverVersion is the River module version in the binary: River's migrations
// change with it, so it is part of the template's identity.
func riverVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, m := range info.Deps {
		if m.Path == "github.com/riverqueue/river" {
			return m.Version
		}
	}
	return ""
}
