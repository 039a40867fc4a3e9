package hub

// history keeps the last versions of a topic with the patch into each, so that a client
// holding any of them is caught up with one combined patch.
type history struct {
	entries []entry
	next    uint64            // sequence number of the next version added
	n       int               // versions held
	index   map[string]uint64 // version id → its latest sequence number
}

type entry struct {
	seq   uint64
	id    string
	patch []byte // from the previous version; nil for a topic's first
}

func newHistory(size int) history {
	return history{entries: make([]entry, size), index: make(map[string]uint64, size)}
}

func (h *history) add(id string, patch []byte) {
	slot := &h.entries[h.next%uint64(len(h.entries))]
	if h.n == len(h.entries) {
		if h.index[slot.id] == slot.seq {
			delete(h.index, slot.id)
		}
	} else {
		h.n++
	}
	*slot = entry{seq: h.next, id: id, patch: patch}
	h.index[id] = h.next
	h.next++
}

// patchesSince returns the patches that take a holder of version id to the newest
// version, oldest first, or false when id is not in the history.
func (h *history) patchesSince(id string) ([][]byte, bool) {
	seq, ok := h.index[id]
	if !ok {
		return nil, false
	}
	out := make([][]byte, 0, h.next-seq-1)
	for s := seq + 1; s < h.next; s++ {
		out = append(out, h.entries[s%uint64(len(h.entries))].patch)
	}
	return out, true
}
