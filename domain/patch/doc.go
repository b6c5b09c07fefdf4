// Package patch applies unified diffs written by a language model to the
// project's one Python file, and writes unified diffs between two versions.
//
// Apply is tolerant of the mistakes models make, but never guesses between
// two readings of a patch:
//
//   - Markdown fences around the diff are removed. When several fenced blocks
//     are present, those labelled diff or patch are preferred.
//   - "diff --git", "index", "---" and "+++" lines are optional and the paths
//     they name are ignored, since the project has one file; a patch naming two
//     different files is refused. "--- /dev/null" (a new file) is accepted only
//     when the current code is empty or blank.
//   - The numbers in "@@" headers may be wrong or missing ("@@ @@"): a hunk is
//     read up to the next "@@" or file header, and is placed by searching the
//     current code for its context and removed lines, first exactly, then
//     ignoring trailing whitespace and CRLF/LF differences. That search must
//     find exactly one place in the whole file; the header's line number only
//     serves to phrase errors.
//   - An empty line inside a hunk is an unchanged empty line whose leading
//     space was lost. Empty lines at the end of a hunk are dropped, since they
//     are usually just the spacing after a diff.
//   - A line inside a hunk that starts with none of ' ', '-', '+' or '\' ends
//     the hunk when only prose follows it (a model's closing remark); when diff
//     lines follow it, the hunk would silently lose them, so it is an error
//     that quotes the line.
//
// The result keeps the current code's line endings (CRLF stays CRLF; added
// lines get the ending most of its lines have, or the patch's when the code
// has no line break) and its final newline, unless the patch changes the
// latter explicitly with "\ No newline at end of file", which only counts in
// a hunk that reaches the end of the file.
//
// Errors are *Error values whose messages are meant to be sent back to the
// model as they are: they name the hunk, quote what was expected and what the
// code has instead, and say what to change.
package patch
