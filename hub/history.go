package hub

import "github.com/pollsse/caddy-poll-sse/diff"

// history keeps the last versions of a topic with the patch into each, and where that
// patch touched the document, so that a client holding any of them is caught up with one
// combined patch, or one merge patch built from the touched paths alone. It is bounded twice: by the
// number of versions and by the bytes of their patches. Past either bound the oldest
// versions go first; a client holding one of those gets a snapshot.
type history struct {
	entries []entry
	next    uint64            // sequence number of the next version added
	n       int               // versions held: the newest n entries
	index   map[string]uint64 // version id → its latest sequence number
	size    int64             // bytes held by the patches and ids of the n entries
	budget  int64             // the most bytes held; the newest version always stays
}

type entry struct {
	seq     uint64
	id      string
	patch   []byte       // from the previous version; nil for a topic's first
	touches diff.Touches // where patch touched the document
	noMerge bool         // patch could not be read: no merge patch spans it
}

// entryOverhead is counted for each version on top of its patch and id: the entry itself
// and its share of the index.
const entryOverhead = 96

// weight is what an entry counts against the byte budget. A patch's whole capacity is
// counted: that is what the heap holds for it.
func (e *entry) weight() int64 {
	return int64(cap(e.patch) + len(e.id) + e.touches.Size() + entryOverhead)
}

func newHistory(size int, budget int64) history {
	return history{entries: make([]entry, size), index: make(map[string]uint64, size), budget: budget}
}

// add adds version id, reached by patch, which touched the document where touches says;
// noMerge when the touches are unknown.
func (h *history) add(id string, patch []byte, touches diff.Touches, noMerge bool) {
	if h.n == len(h.entries) {
		h.dropOldest()
	}
	slot := &h.entries[h.next%uint64(len(h.entries))]
	*slot = entry{seq: h.next, id: id, patch: patch, touches: touches, noMerge: noMerge}
	h.index[id] = h.next
	h.next++
	h.n++
	h.size += slot.weight()
	for h.size > h.budget && h.n > 1 {
		h.dropOldest()
	}
}

// dropOldest forgets the oldest version held.
func (h *history) dropOldest() {
	slot := &h.entries[(h.next-uint64(h.n))%uint64(len(h.entries))]
	if h.index[slot.id] == slot.seq {
		delete(h.index, slot.id)
	}
	h.size -= slot.weight()
	*slot = entry{}
	h.n--
}

// patchesSince returns the patches that take a holder of version id to the newest
// version, oldest first. It returns false when id is not in the history, or when the
// patches together exceed limit bytes: a snapshot is then smaller than their join.
func (h *history) patchesSince(id string, limit int) ([][]byte, bool) {
	first, ok := h.since(id, limit)
	if !ok {
		return nil, false
	}
	out := make([][]byte, 0, h.next-first)
	for s := first; s < h.next; s++ {
		out = append(out, h.at(s).patch)
	}
	return out, true
}

// touchesSince returns where the changes that take a holder of version id to the newest
// version touched the document, oldest first, on the terms of patchesSince, and the
// sequence number of the first. It also returns false when a merge patch cannot span one
// of them.
func (h *history) touchesSince(id string, limit int) ([]diff.Touches, uint64, bool) {
	first, ok := h.since(id, limit)
	if !ok {
		return nil, 0, false
	}
	out := make([]diff.Touches, 0, h.next-first)
	for s := first; s < h.next; s++ {
		e := h.at(s)
		if e.noMerge {
			return nil, 0, false
		}
		out = append(out, e.touches)
	}
	return out, first, true
}

// oldest returns the sequence number of the oldest version held.
func (h *history) oldest() uint64 {
	return h.next - uint64(h.n)
}

// since returns the sequence number of the first change a holder of version id needs to
// reach the newest version. It returns false when id is not in the history, or when the
// patches of those changes together exceed limit bytes. The history is walked from the
// newest version back, so an old id costs no more than limit.
func (h *history) since(id string, limit int) (uint64, bool) {
	seq, ok := h.index[id]
	if !ok {
		return 0, false
	}
	total := 0
	for s := h.next - 1; s > seq; s-- {
		if total += len(h.at(s).patch); total > limit {
			return 0, false
		}
	}
	return seq + 1, true
}

// at returns the entry of sequence number s, which the history holds.
func (h *history) at(s uint64) *entry {
	return &h.entries[s%uint64(len(h.entries))]
}
