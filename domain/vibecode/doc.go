// Package vibecode holds the decisions of the vibecode loop as pure functions
// from state to decision: whether a patch the VibeCoder submitted is
// acceptable (and for a node session, stays inside its agent), what follows a
// VibeCoder reply and an Evaluator verdict, how a failed step ends, how a
// commit rebases onto a moved head, and what a rejection sends back. The
// workers in jobs/ load state, call these, and store what they decide; none
// of this touches a database, River or the model.
package vibecode
