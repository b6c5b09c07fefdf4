// Package migrations holds the application's SQL schema as goose migrations,
// embedded in the binary. River's own tables are migrated by rivermigrate
// beside these (see db.Migrate).
package migrations

import "embed"

// FS holds the numbered *.sql migrations.
//
//go:embed *.sql
var FS embed.FS
