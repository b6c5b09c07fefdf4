// Package faults is the fault-injection suite: it runs Vibegrapher as an
// operator would (the api, realtime and two worker roles as separate
// processes of the real binary, on a PostgreSQL cluster of its own, against
// a fake Responses API), injects faults, and checks from outside, through
// REST and a Socket.IO client that resubscribes with `since`, that every
// accepted message ends exactly once and that no terminal event is lost or
// repeated. It prints how long each recovery took.
//
//	go test ./faults                       # the short suite (part of make test)
//	go test -v ./faults -faults.full       # the full suite (make faults)
//
// The cluster is made with pg_createcluster on a free port in 5450-5459 and
// dropped afterwards; the shared server on 5432 is never touched. Without
// pg_createcluster (or root) the suite is skipped. See docs/reliability.md.
package faults
