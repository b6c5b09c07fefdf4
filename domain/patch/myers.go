package patch

// opKind is one step of an edit script.
type opKind uint8

const (
	opEqual  opKind = iota // a line kept
	opDelete               // a line of a removed
	opInsert               // a line of b added
)

// op is one step of an edit script; ai and bi are the positions in a and b
// before the step.
type op struct {
	kind   opKind
	ai, bi int
}

// editScript returns a shortest edit script turning a into b, found with
// Myers' O(ND) algorithm in its linear-space form: the middle snake splits
// the problem in two until the halves are trivial. Deletions come before
// insertions within each change.
func editScript(a, b []int) []op {
	m := &myers{a: a, b: b, keepA: make([]bool, len(a)), keepB: make([]bool, len(b))}
	m.compare(0, len(a), 0, len(b))
	ops := make([]op, 0, max(len(a), len(b)))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && !m.keepA[i]:
			ops = append(ops, op{opDelete, i, j})
			i++
		case j < len(b) && !m.keepB[j]:
			ops = append(ops, op{opInsert, i, j})
			j++
		default:
			ops = append(ops, op{opEqual, i, j})
			i, j = i+1, j+1
		}
	}
	return ops
}

// myers marks the lines of a and b that a longest common subsequence keeps.
type myers struct {
	a, b         []int
	keepA, keepB []bool
}

func (m *myers) keep(i, j int) { m.keepA[i], m.keepB[j] = true, true }

// compare marks the common subsequence of a[aLo:aHi] and b[bLo:bHi].
func (m *myers) compare(aLo, aHi, bLo, bHi int) {
	for aLo < aHi && bLo < bHi && m.a[aLo] == m.b[bLo] {
		m.keep(aLo, bLo)
		aLo, bLo = aLo+1, bLo+1
	}
	for aLo < aHi && bLo < bHi && m.a[aHi-1] == m.b[bHi-1] {
		aHi, bHi = aHi-1, bHi-1
		m.keep(aHi, bHi)
	}
	if aLo == aHi || bLo == bHi {
		return
	}
	x, y, ok := m.middleSnake(aLo, aHi, bLo, bHi)
	if !ok {
		return // nothing in common
	}
	m.compare(aLo, x, bLo, y)
	m.compare(x, aHi, y, bHi)
}

// middleSnake walks shortest paths from both corners of the edit graph of
// a[aLo:aHi] and b[bLo:bHi] until they meet, and returns the meeting point,
// which lies on a shortest path. Both ranges are non-empty and differ in
// their first and last elements, so the point is never a corner. This
// follows diff-match-patch's bisect.
func (m *myers) middleSnake(aLo, aHi, bLo, bHi int) (x, y int, ok bool) {
	n, mm := aHi-aLo, bHi-bLo
	a, b := m.a[aLo:aHi], m.b[bLo:bHi]
	maxD := (n + mm + 1) / 2
	off, size := maxD, 2*maxD+2
	v1, v2 := make([]int, size), make([]int, size)
	for i := range v1 {
		v1[i], v2[i] = -1, -1
	}
	v1[off+1], v2[off+1] = 0, 0
	delta := n - mm
	front := delta%2 != 0 // with an odd delta the forward path detects the overlap
	k1start, k1end, k2start, k2end := 0, 0, 0, 0
	for d := 0; d < maxD; d++ {
		for k1 := -d + k1start; k1 <= d-k1end; k1 += 2 {
			i := off + k1
			var x1 int
			if k1 == -d || (k1 != d && v1[i-1] < v1[i+1]) {
				x1 = v1[i+1]
			} else {
				x1 = v1[i-1] + 1
			}
			y1 := x1 - k1
			for x1 < n && y1 < mm && a[x1] == b[y1] {
				x1, y1 = x1+1, y1+1
			}
			v1[i] = x1
			switch {
			case x1 > n:
				k1end += 2 // ran off the right of the graph
			case y1 > mm:
				k1start += 2 // ran off the bottom
			case front:
				if j := off + delta - k1; j >= 0 && j < size && v2[j] != -1 && x1 >= n-v2[j] {
					return m.split(aLo, aHi, bLo, bHi, x1, y1)
				}
			}
		}
		for k2 := -d + k2start; k2 <= d-k2end; k2 += 2 {
			i := off + k2
			var x2 int
			if k2 == -d || (k2 != d && v2[i-1] < v2[i+1]) {
				x2 = v2[i+1]
			} else {
				x2 = v2[i-1] + 1
			}
			y2 := x2 - k2
			for x2 < n && y2 < mm && a[n-x2-1] == b[mm-y2-1] {
				x2, y2 = x2+1, y2+1
			}
			v2[i] = x2
			switch {
			case x2 > n:
				k2end += 2 // ran off the left
			case y2 > mm:
				k2start += 2 // ran off the top
			case !front:
				if j := off + delta - k2; j >= 0 && j < size && v1[j] != -1 {
					x1 := v1[j]
					y1 := off + x1 - j
					if x1 >= n-x2 {
						return m.split(aLo, aHi, bLo, bHi, x1, y1)
					}
				}
			}
		}
	}
	return 0, 0, false
}

// split turns a meeting point relative to the ranges into absolute indexes,
// refusing a corner, which would make compare recurse forever.
func (m *myers) split(aLo, aHi, bLo, bHi, x, y int) (int, int, bool) {
	if (x == 0 && y == 0) || (aLo+x == aHi && bLo+y == bHi) {
		return 0, 0, false
	}
	return aLo + x, bLo + y, true
}
