package diff

// Touches is where one change's operations changed the document: all that the merge
// patch of a catch-up over several changes needs of each. Keeping it with each version
// builds that merge patch from the paths alone, without reading the joined JSON Patch
// and its values again. The zero Touches is a change that touched nothing.
type Touches struct {
	list []touch
}

// Touches returns where the change's operations changed the document. A change made
// here has them at hand; one made elsewhere (NewChange) has its patch read, and an error
// when that is not an RFC 6902 patch with valid pointers.
func (c Change) Touches() (Touches, error) {
	if m := c.merge; m != nil && !m.given {
		return Touches{list: m.touches}, nil
	}
	if c.Patch == nil {
		return Touches{}, nil
	}
	ops, err := parseOps(c.Patch)
	if err != nil {
		return Touches{}, err
	}
	list, err := touchesOf(ops)
	return Touches{list: list}, err
}

// touchOverhead estimates the bytes a touch holds besides its tokens' text: the touch
// and one string header a token.
const touchOverhead, tokenOverhead = 32, 16

// Size estimates the bytes t holds, for memory budgets.
func (t Touches) Size() int {
	n := 0
	for _, x := range t.list {
		n += touchOverhead
		for _, tok := range x.at {
			n += tokenOverhead + len(tok)
		}
	}
	return n
}

// MergeFromTouches returns the RFC 7386 merge patch that takes the version before the
// first of changes, each given by its Touches, oldest first, to version to, the result of
// the last. It is the merge patch MergeFromPatch returns for the changes' patches joined,
// byte for byte, and reports false in the same cases: a merge patch cannot express the
// change.
func MergeFromTouches(changes []Touches, to *Version) ([]byte, bool) {
	return AppendMergeFromTouches(nil, changes, to)
}

// AppendMergeFromTouches is MergeFromTouches appending to dst: a caller that only copies
// the patch into a frame reuses one buffer for catch-ups of any size. When it reports
// false, dst is returned as it was.
func AppendMergeFromTouches(dst []byte, changes []Touches, to *Version) ([]byte, bool) {
	n := 0
	for _, c := range changes {
		n += len(c.list)
	}
	all := make([]touch, 0, n)
	for _, c := range changes {
		all = append(all, c.list...)
	}
	return appendMergePatch(dst, all, to.doc)
}
