package db

import (
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/uuid"
)

// The script cache keeps what fits in its bytes and forgets the least
// recently used commit first; a script larger than the cache is not kept.
func TestScriptCacheForgetsTheLeastRecentlyUsed(t *testing.T) {
	c := newScriptCache(3*scriptEntryOverhead + 30)
	key := func(i int) scriptKey { return scriptKey{uuid.UUID{byte(i)}, plumbing.Hash{byte(i)}} }
	code := func(i int) string { return strings.Repeat(string(rune('a'+i)), 10) }
	for i := range 3 {
		c.put(key(i), code(i))
	}
	if got, ok := c.get(key(0)); !ok || got != code(0) { // now the most recently used
		t.Fatalf("entry 0: %q, %v", got, ok)
	}
	c.put(key(3), code(3)) // over the bound: entry 1 goes
	for i, want := range []bool{true, false, true, true} {
		if got, ok := c.get(key(i)); ok != want || (ok && got != code(i)) {
			t.Errorf("entry %d: %q, %v; want kept %v", i, got, ok, want)
		}
	}
	c.put(key(0), "a different code") // a commit's code is kept once
	if got, _ := c.get(key(0)); got != code(0) {
		t.Errorf("entry 0 after a second put: %q", got)
	}
	c.put(key(4), strings.Repeat("x", 2*scriptEntryOverhead+31)) // its entry with its overhead is over the bound
	if _, ok := c.get(key(4)); ok {
		t.Error("a script larger than the cache was kept")
	}
	if c.bytes != 3*scriptEntryOverhead+30 || c.order.Len() != 3 || len(c.byKey) != 3 {
		t.Errorf("the cache holds %d bytes in %d and %d entries; want %d in 3", c.bytes, c.order.Len(), len(c.byKey), 3*scriptEntryOverhead+30)
	}
	empty := newScriptCache(2 * scriptEntryOverhead) // empty scripts take room too
	for i := range 3 {
		empty.put(key(i), "")
	}
	if _, ok := empty.get(key(0)); ok || empty.order.Len() != 2 {
		t.Errorf("three empty scripts in room for two: %d kept, the first kept %v", empty.order.Len(), ok)
	}
}

// Forgetting a repository drops its entries only, and gives back their room.
func TestScriptCacheForgetsARepository(t *testing.T) {
	c := newScriptCache(10 * scriptEntryOverhead)
	a, b := uuid.UUID{1}, uuid.UUID{2}
	c.put(scriptKey{a, plumbing.Hash{1}}, "a1")
	c.put(scriptKey{b, plumbing.Hash{1}}, "b1")
	c.put(scriptKey{a, plumbing.Hash{2}}, "a2")
	c.forget(a)
	if _, ok := c.get(scriptKey{b, plumbing.Hash{1}}); !ok || c.order.Len() != 1 || len(c.byKey) != 1 || c.bytes != scriptEntryOverhead+2 {
		t.Fatalf("after forgetting a: b kept %v, %d entries, %d bytes", ok, c.order.Len(), c.bytes)
	}
}
