package difftest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Item is one element of a keyed array: an object identified by its "id" member, with
// an "updated_at" member of the kind an ignore setting leaves out.
type Item struct {
	ID        int      `json:"id"`
	Name      string   `json:"name"`
	Price     int      `json:"price"`
	Tags      []string `json:"tags"`
	UpdatedAt string   `json:"updated_at"`
}

// NewItem returns the item with the given id; the same id gives the same item.
func NewItem(id int) Item {
	return Item{
		ID:        id,
		Name:      fmt.Sprintf("item %d", id),
		Price:     id * 3 % 1000,
		Tags:      []string{"t" + fmt.Sprint(id%7)},
		UpdatedAt: fmt.Sprintf("2024-01-01T00:00:%02dZ", id%60),
	}
}

// Items returns items with ids 1 to n, in order.
func Items(n int) []Item {
	items := make([]Item, n)
	for i := range items {
		items[i] = NewItem(i + 1)
	}
	return items
}

// KeyedDoc returns the document {"items": items}.
func KeyedDoc(items []Item) []byte {
	return keyedDoc(items)
}

// keyedDoc encodes {"items": elems}; elems is []Item or, for messy arrays, []any.
func keyedDoc(elems any) []byte {
	b, err := json.Marshal(map[string]any{"items": elems})
	if err != nil {
		panic("difftest: encoding keyed document: " + err.Error()) // plain values always encode
	}
	return b
}

// Insert returns a copy of items with it inserted at index at.
func Insert(items []Item, at int, it Item) []Item {
	return slices.Insert(slices.Clone(items), at, it)
}

// Remove returns a copy of items without the element at index at.
func Remove(items []Item, at int) []Item {
	return slices.Delete(slices.Clone(items), at, at+1)
}

// Move returns a copy of items with the element at index from moved to index to.
func Move(items []Item, from, to int) []Item {
	it := items[from]
	return slices.Insert(Remove(items, from), to, it)
}

// KeyedPairs returns n pairs of keyed documents {"items": [...]} (see Item), the same
// for the same seed, each mutated by one to four keyed mutations: insert at the front,
// middle or end, remove, move, change a member, touch updated_at, or reverse. About one
// pair in fifty is messy: an id repeated, an element without an id, or not an object;
// a patch must still be right for those. Pair i is named "keyed/<seed>/<i>: ...".
func KeyedPairs(seed int64, n int) []Pair {
	pairs := make([]Pair, n)
	for i := range pairs {
		pairs[i] = keyedPair(seed, i)
	}
	return pairs
}

func keyedPair(seed int64, i int) Pair {
	g := newGen(seed, uint64(i)|1<<62)
	k := &keyed{g: g, nextID: 1}
	a := k.items(g.intn(40))
	b := slices.Clone(a)
	var what []string
	for range g.mutationCount() {
		var w string
		b, w = k.mutate(b)
		what = append(what, w)
	}
	name := fmt.Sprintf("keyed/%d/%d: %s", seed, i, strings.Join(what, "; "))
	if g.chance(0.02) {
		return Pair{Name: name + "; messy", A: KeyedDoc(a), B: k.messy(b)}
	}
	return Pair{Name: name, A: KeyedDoc(a), B: KeyedDoc(b)}
}

// keyed draws keyed arrays and mutations; ids are unique within a pair.
type keyed struct {
	g      *gen
	nextID int
}

func (k *keyed) item() Item {
	k.nextID += 1 + k.g.intn(5)
	return NewItem(k.nextID)
}

// items returns n items with increasing ids, shuffled half the time.
func (k *keyed) items(n int) []Item {
	items := make([]Item, n)
	for i := range items {
		items[i] = k.item()
	}
	if k.g.chance(0.5) {
		k.g.rng.Shuffle(n, func(i, j int) { items[i], items[j] = items[j], items[i] })
	}
	return items
}

// mutate applies one keyed mutation to items and describes it.
func (k *keyed) mutate(items []Item) ([]Item, string) {
	n := len(items)
	where := []int{0, n / 2, n}
	w := k.g.intn(3)
	switch r := k.g.intn(8); {
	case r == 0 || n == 0:
		return Insert(items, where[w], k.item()), fmt.Sprintf("insert at %d", where[w])
	case r == 1:
		at := min(where[w], n-1)
		return Remove(items, at), fmt.Sprintf("remove at %d", at)
	case r == 2:
		from, to := k.g.intn(n), k.g.intn(n)
		return Move(items, from, to), fmt.Sprintf("move %d to %d", from, to)
	case r == 3:
		slices.Reverse(items)
		return items, "reverse"
	default:
		return k.change(items)
	}
}

// change changes one member of one item.
func (k *keyed) change(items []Item) ([]Item, string) {
	at := k.g.intn(len(items))
	it := &items[at]
	it.Tags = slices.Clone(it.Tags)
	switch k.g.intn(4) {
	case 0:
		it.Name = pick(k.g, strs)
		return items, fmt.Sprintf("rename %d", at)
	case 1:
		it.Price++
		return items, fmt.Sprintf("reprice %d", at)
	case 2:
		it.Tags = append(it.Tags, "new")
		return items, fmt.Sprintf("tag %d", at)
	default:
		it.UpdatedAt = "2025-06-01T12:00:00Z"
		return items, fmt.Sprintf("touch %d", at)
	}
}

// messy encodes items with one element spoilt: a repeated id, no id, or a scalar.
func (k *keyed) messy(items []Item) []byte {
	elems := make([]any, 0, len(items)+1)
	for _, it := range items {
		elems = append(elems, it)
	}
	at := k.g.intn(len(elems) + 1)
	var bad any
	switch k.g.intn(3) {
	case 0:
		if len(items) > 0 {
			bad = NewItem(items[0].ID) // a repeated id
		}
	case 1:
		bad = map[string]any{"name": "no id"}
	default:
		bad = "not an object"
	}
	return keyedDoc(slices.Insert(elems, at, bad))
}
