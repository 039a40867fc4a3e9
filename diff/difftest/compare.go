package difftest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
)

// Decode decodes exactly one JSON document, with numbers as json.Number so that they
// keep their text. A repeated object member keeps its last value, as encoding/json does.
func Decode(doc []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the document")
	}
	return v, nil
}

// Equal reports whether two JSON documents hold the same value: objects whatever their
// member order, strings after unescaping, numbers by exact decimal value (1 == 1.0 ==
// 1e0, 0 == -0, and 2^64+1 != 2^64).
func Equal(a, b []byte) (bool, error) {
	return compare(a, b, sameValue)
}

// Identical reports whether two JSON documents are the same but for spacing and member
// order: as Equal, except that numbers must be spelt alike.
func Identical(a, b []byte) (bool, error) {
	return compare(a, b, func(x, y json.Number) bool { return x == y })
}

func compare(a, b []byte, num func(x, y json.Number) bool) (bool, error) {
	x, err := Decode(a)
	if err != nil {
		return false, fmt.Errorf("decoding %.200q: %w", a, err)
	}
	y, err := Decode(b)
	if err != nil {
		return false, fmt.Errorf("decoding %.200q: %w", b, err)
	}
	return equalValues(x, y, num), nil
}

func equalValues(x, y any, num func(x, y json.Number) bool) bool {
	switch x := x.(type) {
	case map[string]any:
		y, ok := y.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equalValues(xv, yv, num) {
				return false
			}
		}
		return true
	case []any:
		y, ok := y.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalValues(x[i], y[i], num) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := y.(json.Number)
		return ok && num(x, y)
	default:
		return x == y // nil, bool, string
	}
}

// sameValue compares two JSON numbers by exact value without building it, so that
// 1e999999999 costs no more than 1.
func sameValue(x, y json.Number) bool {
	return normalNumber(string(x)) == normalNumber(string(y))
}

// normalNumber returns a JSON number as sign, significant digits without leading or
// trailing zeros, and exponent: "-1.50e2" and "-150" both give "-15e1"; every zero
// gives "0".
func normalNumber(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mant, exp, _ := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(intPart+frac, "0")
	e, ok := new(big.Int).SetString(strings.TrimPrefix(exp, "+"), 10)
	if !ok {
		e = new(big.Int)
	}
	e.Sub(e, big.NewInt(int64(len(frac))))
	trimmed := strings.TrimRight(digits, "0")
	if trimmed == "" {
		return "0"
	}
	e.Add(e, big.NewInt(int64(len(digits)-len(trimmed))))
	sign := ""
	if neg {
		sign = "-"
	}
	return sign + trimmed + "e" + e.String()
}

// NullMember returns the pointer of a member of doc whose value is null, in any object
// however deep, arrays included, if there is one. A change to such a document is not
// sent as an RFC 7386 merge patch: a null member there reads as a deletion, and appliers
// disagree on nulls in objects within arrays. Null elements of arrays do not count.
func NullMember(doc []byte) (string, bool, error) {
	v, err := Decode(doc)
	if err != nil {
		return "", false, err
	}
	p, ok := nullMember(v, "")
	return p, ok, nil
}

func nullMember(v any, path string) (string, bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, mv := range v {
			p := path + "/" + escapeToken(k)
			if mv == nil {
				return p, true
			}
			if q, ok := nullMember(mv, p); ok {
				return q, true
			}
		}
	case []any:
		for i, el := range v {
			if q, ok := nullMember(el, fmt.Sprintf("%s/%d", path, i)); ok {
				return q, true
			}
		}
	}
	return "", false
}
