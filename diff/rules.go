package diff

// rule is an ignore pointer, or an array_key pointer with its key member, relative to
// the selected part of the document.
type rule struct {
	at     pointer
	member string // the key member of an array_key rule
}

// ruleSet holds what remains of the rules that reach the current value.
type ruleSet []rule

// member returns the rules that reach into the object member name, and a rule that ends
// at it.
func (s ruleSet) member(name string) (ruleSet, *rule) {
	return s.step(func(tok string) bool { return tok == wildcard || tok == name })
}

// element returns the rules that reach into array element i, and a rule that ends at it.
func (s ruleSet) element(i int) (ruleSet, *rule) {
	return s.step(func(tok string) bool {
		j, ok := arrayIndex(tok)
		return tok == wildcard || ok && j == i
	})
}

func (s ruleSet) step(match func(string) bool) (ruleSet, *rule) {
	var next ruleSet
	var ended *rule
	for i, r := range s {
		if !match(r.at[0]) {
			continue
		}
		if len(r.at) == 1 {
			ended = &s[i]
			continue
		}
		next = append(next, rule{at: r.at[1:], member: r.member})
	}
	return next, ended
}

// positionFree reports whether the rules treat every element of an array at this point
// alike, so that an element may be matched with a previous one at another position.
func (s ruleSet) positionFree() bool {
	for _, r := range s {
		if _, ok := arrayIndex(r.at[0]); ok {
			return false
		}
	}
	return true
}

// upstreamIndex returns the index in the upstream array of element i of the streamed
// one, from which the rules s left out elements by index.
func (s ruleSet) upstreamIndex(i int) int {
	if s.positionFree() {
		return i
	}
	// Each rule leaves out one index at most (a "*" that leaves out every element
	// leaves none to ask about), so element i lies within the first i+len(s)+1.
	for u, kept := 0, 0; u <= i+len(s); u++ {
		if _, drop := s.element(u); drop != nil {
			continue
		}
		if kept == i {
			return u
		}
		kept++
	}
	return i
}

// scope holds the array_key rules and the ignore rules that reach the value the walker
// compares. It follows the ignore rules only while array_key rules remain, to know the
// upstream index of an array element.
type scope struct{ keys, ignore ruleSet }

// member returns the scope of the object member name, and the array_key rule that ends
// at it.
func (s scope) member(name string) (scope, *rule) {
	if len(s.keys) == 0 {
		return scope{}, nil
	}
	keys, ended := s.keys.member(name)
	ignore, _ := s.ignore.member(name)
	return scope{keys: keys, ignore: ignore}, ended
}

// element returns the scope of element i of a streamed array, and the array_key rule
// that ends at it. Pointers address the upstream document, in which the elements that
// ignore leaves out still take their places.
func (s scope) element(i int) (scope, *rule) {
	if len(s.keys) == 0 {
		return scope{}, nil
	}
	u := s.ignore.upstreamIndex(i)
	keys, ended := s.keys.element(u)
	ignore, _ := s.ignore.element(u)
	return scope{keys: keys, ignore: ignore}, ended
}
