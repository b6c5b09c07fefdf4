package vibecode

import (
	"strings"
	"unicode"

	"github.com/vibegrapher/vibegrapher/domain"
	"github.com/vibegrapher/vibegrapher/domain/patch"
	"github.com/vibegrapher/vibegrapher/domain/pyast"
)

// DefaultCommitMessage is used when neither the person nor the Evaluator
// gave one.
const DefaultCommitMessage = "Apply VibeCoder patch"

// Rebase applies an approved diff to the code at the head of branch. When
// the head moved since the diff's base (baseCode) and the diff no longer
// applies, or applies but gives invalid Python, or the head already has its
// change, the answer is a conflict that says why.
func Rebase(headCode, baseCode, diff, branch, head, base string) (string, error) {
	patched, err := patch.Apply(headCode, diff)
	if err != nil {
		return "", domain.Errorf(domain.ECONFLICT, "the diff no longer applies to the head of %s (%s), which moved since its base %s: %v",
			branch, short(head), short(base), err)
	}
	if head != base && alreadyApplied(headCode, baseCode, diff) {
		// A hunk is placed wherever its lines are found once: a change that
		// another commit made already (the same lines appended, say)
		// applied a second time, as git apply would not.
		return "", domain.Errorf(domain.ECONFLICT, "the head of %s (%s), which moved since the diff's base %s, already has its change",
			branch, short(head), short(base))
	}
	if err := pyast.CheckEdit(headCode, patched); err != nil {
		return "", domain.Errorf(domain.ECONFLICT, "applied to the head of %s (%s) the diff gives invalid Python: %v", branch, short(head), err)
	}
	return patched, nil
}

// alreadyApplied reports whether the diff's change is already in headCode:
// a diff that only adds lines (the one kind that applies again over its own
// change: a diff that removes or changes lines finds them gone) whose undoing
// (the diff from the patched base back to the base, which removes the added
// lines) applies there. Undoing a removal is an addition, which a hunk
// placed wherever its context is found would apply to almost any head.
func alreadyApplied(headCode, baseCode, diff string) bool {
	if !patch.OnlyAdds(diff) {
		return false
	}
	patchedBase, err := patch.Apply(baseCode, diff)
	if err != nil {
		return false
	}
	undo := patch.Unified(patchedBase, baseCode, domain.ScriptPath)
	if undo == "" {
		return false
	}
	_, err = patch.Apply(headCode, undo)
	return err == nil
}

func short(sha string) string {
	if len(sha) > 10 {
		return sha[:10]
	}
	return sha
}

// CommitMessage is the message a commit gets: the person's, else the diff's,
// else DefaultCommitMessage. The diff's is the Evaluator's (a model's words,
// which the code it read can steer): it goes into the git log without the
// control characters a person's may not carry either (an escape a terminal
// would act on).
func CommitMessage(requested, diffs string) string {
	if msg := strings.TrimSpace(requested); msg != "" {
		return msg
	}
	dropped := strings.Map(func(r rune) rune {
		if StrayControl(r) {
			return -1
		}
		return r
	}, diffs)
	if msg := strings.TrimSpace(dropped); msg != "" {
		return msg
	}
	return DefaultCommitMessage
}

// StrayControl reports whether r is a control character that a commit
// message may not carry: any but a line break or a tab.
func StrayControl(r rune) bool {
	return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t'
}

// ForgetsOnCommit are the agents whose memory of a session is cleared when a
// diff of it is committed: the Evaluator reviews the next patch afresh, while
// the VibeCoder keeps its history and sees the new code.
var ForgetsOnCommit = []string{domain.AgentEvaluator}

// RejectionPrompt is the message that carries a person's rejection feedback
// back to the VibeCoder.
func RejectionPrompt(feedback string) string {
	return "I rejected your last patch. My feedback:\n" + feedback
}
