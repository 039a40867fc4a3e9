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
