package pyast

// go-tree-sitter routes every allocation of the C library through a Go
// callback (its allocator.go: C → Go → atomic.Value → C malloc), which costs
// a cgo round trip per malloc and free. The memory is libc's either way, so
// tree-sitter's own default (malloc, calloc, realloc and free, called
// directly) is restored here. That is safe because this init runs after
// go-tree-sitter's (which installs the callbacks) and before any parse, and
// everything go-tree-sitter frees itself it frees with libc's free
// (LIBRARIES.md, addendum D). BenchmarkParseAgents5000Allocator compares both.

/*
#include <malloc.h>
#include <stdlib.h>
void ts_set_allocator(void *(*)(size_t), void *(*)(size_t, size_t), void *(*)(void *, size_t), void (*)(void *));
static void restore_c_allocator(void) { ts_set_allocator(NULL, NULL, NULL, NULL); }
*/
import "C"

func init() { useCAllocator() }

// useCAllocator makes tree-sitter call libc's allocator directly. It must
// not run while a parse does.
func useCAllocator() { C.restore_c_allocator() }

// cHeapInUse is the memory libc's allocator has handed out and not had
// back, tree-sitter's trees among it: what BenchmarkKeptParseMemory reads,
// since Go's memory statistics do not see it.
func cHeapInUse() int64 {
	m := C.mallinfo2()
	return int64(m.uordblks + m.hblkhd)
}
