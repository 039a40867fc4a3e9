package hub

// history keeps the last versions of a topic with the patch into each, so that a client
// holding any of them is caught up with one combined patch. It is bounded twice: by the
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
	seq   uint64
	id    string
	patch []byte // from the previous version; nil for a topic's first
}

// entryOverhead is counted for each version on top of its patch and id: the entry itself
// and its share of the index.
const entryOverhead = 96

// weight is what an entry counts against the byte budget. A patch's whole capacity is
// counted: that is what the heap holds for it.
func (e *entry) weight() int64 {
	return int64(cap(e.patch) + len(e.id) + entryOverhead)
}

func newHistory(size int, budget int64) history {
	return history{entries: make([]entry, size), index: make(map[string]uint64, size), budget: budget}
}

func (h *history) add(id string, patch []byte) {
	if h.n == len(h.entries) {
		h.dropOldest()
	}
	slot := &h.entries[h.next%uint64(len(h.entries))]
	*slot = entry{seq: h.next, id: id, patch: patch}
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
// patches together exceed limit bytes: a snapshot is then smaller than their join. The
// history is walked from the newest version back, so an old id costs no more than limit.
func (h *history) patchesSince(id string, limit int) ([][]byte, bool) {
	seq, ok := h.index[id]
	if !ok {
		return nil, false
	}
	n, total := int(h.next-seq-1), 0
	for s := h.next - 1; s > seq; s-- {
		if total += len(h.entries[s%uint64(len(h.entries))].patch); total > limit {
			return nil, false
		}
	}
	out := make([][]byte, 0, n)
	for s := seq + 1; s < h.next; s++ {
		out = append(out, h.entries[s%uint64(len(h.entries))].patch)
	}
	return out, true
}
