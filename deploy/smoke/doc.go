// Package smoke holds the end-to-end check `make docker-smoke` runs against
// the compose stack (smoke_test.go, build tag dockersmoke): it is not part of
// `go test ./...` and ships in no binary.
package smoke
