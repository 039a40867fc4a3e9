package diff

import (
	"slices"
	"sort"
	"strconv"
)

// keyed compares arrays whose elements are objects identified by the member key: one
// remove per element gone, one add per element new, one move per element that left the
// longest run of elements still in order, then the changes inside matched elements. It
// reports false, having done nothing, when some element has no scalar key or a key
// repeats; the arrays are then compared by position.
func (w *walker) keyed(a, b *node, s scope, key string) bool {
	oldKeys, oldAt, ok := elementKeys(a, key)
	if !ok {
		return false
	}
	newKeys, newAt, ok := elementKeys(b, key)
	if !ok {
		return false
	}
	kept := w.removeGone(oldKeys, newAt)
	w.place(b, kept, newKeys, oldAt, newAt)
	for i, k := range newKeys {
		if j, ok := oldAt[k]; ok {
			w.element(a.kids[j], b.kids[i], s, i)
		}
	}
	return true
}

// elementKeys returns the key of each element and the position of each key, or false
// when an element has none or two share one. A key is the JSON type and text of a
// string, number, boolean or null member.
func elementKeys(arr *node, member string) ([]string, map[string]int, bool) {
	keys := make([]string, len(arr.kids))
	at := make(map[string]int, len(arr.kids))
	for i, el := range arr.kids {
		if el.kind != kindObject {
			return nil, nil, false
		}
		k := el.member(member)
		if k == nil || k.kind == kindObject || k.kind == kindArray {
			return nil, nil, false
		}
		keys[i] = string(rune('0'+k.kind)) + k.text
		if _, dup := at[keys[i]]; dup {
			return nil, nil, false
		}
		at[keys[i]] = i
	}
	return keys, at, true
}

// removeGone removes, last first, the elements whose key is not in the new array, and
// returns the keys that stay, in order.
func (w *walker) removeGone(oldKeys []string, newAt map[string]int) []string {
	kept := make([]string, 0, len(oldKeys))
	for i := len(oldKeys) - 1; i >= 0; i-- {
		if _, ok := newAt[oldKeys[i]]; ok {
			kept = append(kept, oldKeys[i])
			continue
		}
		w.index(i, func() { w.emit(opRemove, nil) })
	}
	slices.Reverse(kept)
	return kept
}

// place adds the new elements and moves those out of order, last first, each just before
// the element that follows it in the new array, until the array's keys are newKeys.
func (w *walker) place(b *node, cur, newKeys []string, oldAt, newAt map[string]int) {
	stable := inOrder(cur, newAt)
	for i := len(newKeys) - 1; i >= 0; i-- {
		k := newKeys[i]
		if stable[k] {
			continue
		}
		if _, existed := oldAt[k]; !existed {
			pos := before(cur, newKeys, i)
			w.index(pos, func() { w.emit(opAdd, b.kids[i]) })
			cur = slices.Insert(cur, pos, k)
			continue
		}
		from := slices.Index(cur, k)
		cur = slices.Delete(cur, from, from+1)
		pos := before(cur, newKeys, i)
		cur = slices.Insert(cur, pos, k)
		if pos != from {
			w.move(from, pos)
		}
	}
}

// move moves element from of the array at the current path to index to.
func (w *walker) move(from, to int) {
	src := string(w.path) + "/" + strconv.Itoa(from)
	w.index(to, func() { w.ops = append(w.ops, op{kind: opMove, path: string(w.path), from: src}) })
}

// before returns where in cur the element newKeys[i] goes: just before newKeys[i+1],
// or at the end.
func before(cur, newKeys []string, i int) int {
	if i+1 == len(newKeys) {
		return len(cur)
	}
	return slices.Index(cur, newKeys[i+1])
}

// inOrder returns the keys of cur in a longest run whose order the new array keeps;
// they never move.
func inOrder(cur []string, newAt map[string]int) map[string]bool {
	seq := make([]int, len(cur))
	for i, k := range cur {
		seq[i] = newAt[k]
	}
	out := make(map[string]bool, len(cur))
	for _, i := range longestIncreasing(seq) {
		out[cur[i]] = true
	}
	return out
}

// longestIncreasing returns the indices of a longest strictly increasing subsequence of
// seq, in O(n log n).
func longestIncreasing(seq []int) []int {
	var tails []int // tails[l]: index in seq of the smallest tail of a run of length l+1
	prev := make([]int, len(seq))
	for i, v := range seq {
		l := sort.Search(len(tails), func(j int) bool { return seq[tails[j]] >= v })
		if l > 0 {
			prev[i] = tails[l-1]
		} else {
			prev[i] = -1
		}
		if l == len(tails) {
			tails = append(tails, i)
		} else {
			tails[l] = i
		}
	}
	out := make([]int, len(tails))
	for i, k := len(tails)-1, -1; i >= 0; i-- {
		if k == -1 {
			k = tails[len(tails)-1]
		} else {
			k = prev[k]
		}
		out[i] = k
	}
	return out
}
