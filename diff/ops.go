package diff

// opKind is an RFC 6902 operation.
type opKind uint8

const (
	opAdd opKind = iota
	opRemove
	opReplace
	opMove
)

var opNames = [...]string{opAdd: "add", opRemove: "remove", opReplace: "replace", opMove: "move"}

// op is one operation of a JSON Patch; paths are encoded RFC 6901 pointers.
type op struct {
	kind  opKind
	path  string
	from  string // of a move
	value *node  // of an add or replace
}

// appendPatch appends ops as an RFC 6902 JSON Patch.
func appendPatch(dst []byte, ops []op) []byte {
	dst = append(dst, '[')
	for i, o := range ops {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"op":"`...)
		dst = append(dst, opNames[o.kind]...)
		dst = append(dst, `","path":`...)
		dst = quote(dst, o.path)
		if o.kind == opMove {
			dst = append(dst, `,"from":`...)
			dst = quote(dst, o.from)
		}
		if o.value != nil {
			dst = append(dst, `,"value":`...)
			dst = appendJSON(dst, o.value)
		}
		dst = append(dst, '}')
	}
	return append(dst, ']')
}
