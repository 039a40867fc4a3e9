package redisstore

import (
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Bodies are stored zstd-compressed: JSON documents shrink several times, and every node
// reads each body once. One encoder and one decoder serve the process; EncodeAll and
// DecodeAll are safe for concurrent use.
var (
	encoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
		if err != nil {
			panic(fmt.Sprintf("zstd encoder with constant options: %v", err))
		}
		return e
	})
	decoder = sync.OnceValue(func() *zstd.Decoder {
		// DecodeAll never writes past the capacity it is given: see decompress.
		d, err := zstd.NewReader(nil, zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderConcurrency(2))
		if err != nil {
			panic(fmt.Sprintf("zstd decoder with constant options: %v", err))
		}
		return d
	})
)

// Errors of stored bodies, as clients are told of them in an upstream event.
var (
	// ErrStoredTooLarge is a stored body that says it, or turns out to be, larger than
	// the reading node's max_body.
	ErrStoredTooLarge = errors.New("stored document over max_body")
	// ErrStoredCorrupt is a stored body that does not decompress.
	ErrStoredCorrupt = errors.New("stored document unreadable")
)

func compress(body []byte) []byte {
	return encoder().EncodeAll(body, make([]byte, 0, len(body)/4+64))
}

// decompress returns the body of a stored entry that says it holds size bytes. It
// allocates size bytes at most, and size is at most maxBody: a hostile or corrupt entry
// that holds more, or says it holds more, is refused before it costs memory.
func decompress(data []byte, size, maxBody int64) ([]byte, error) {
	if size < 0 || size > maxBody {
		return nil, ErrStoredTooLarge
	}
	body, err := decoder().DecodeAll(data, make([]byte, 0, size))
	switch {
	case errors.Is(err, zstd.ErrDecoderSizeExceeded), errors.Is(err, zstd.ErrFrameSizeExceeded):
		return nil, ErrStoredTooLarge
	case err != nil, int64(len(body)) != size:
		return nil, ErrStoredCorrupt
	}
	return body, nil
}
