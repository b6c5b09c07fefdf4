package realtime

// AfterLookup makes s call f in each subscribe between the check of its
// project and the hand-over to the hub, the window a delete can fall into.
// Call it before s serves anyone.
func AfterLookup(s *Server, f func(project string)) { s.afterLookup = f }

// KeepDeletions sets how many deletions s's hub remembers. Call it before
// Run.
func KeepDeletions(s *Server, n int) { s.hub.deleted.limit = n }
