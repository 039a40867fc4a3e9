package redisstore

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"testing"
)

// board is a market-board document shaped like the demo's (caddyfile.example), with as
// many instruments as asked: each tick moves the prices of a few of them.
type board struct {
	tick int
	rows [][]byte
}

func newBoard(rows int) *board {
	b := &board{rows: make([][]byte, rows)}
	for i := range rows {
		b.set(i)
	}
	return b
}

// set writes row i at the board's tick.
func (b *board) set(i int) {
	price := 10000 + i*37 + (b.tick*31+i*7)%500
	b.rows[i] = fmt.Appendf(b.rows[i][:0], `{"symbol":"S%04d","name":"Instrument %d","sector":"Sector %d","about":"Row %d of the board, described at some length as such APIs do","isin":"US%010d","currency":"USD","lot":100,"previous_close":%d.%02d,"price":%d.%02d,"bid":%d.%02d,"ask":%d.%02d,"volume":%d}`,
		i, i, i%11, i, i*7919, 100+i*37/100, i%100, price/100, price%100, (price-2)/100, (price-2)%100, (price+2)/100, (price+2)%100, (b.tick*97+i)%86400)
}

// next moves the board one tick: moved rows change.
func (b *board) next(moved int) {
	b.tick++
	for k := range moved {
		b.set((b.tick*7 + k*13) % len(b.rows))
	}
}

func (b *board) doc() []byte { return b.appendDoc(nil) }

// appendDoc appends the board's document to out.
func (b *board) appendDoc(out []byte) []byte {
	out = fmt.Appendf(out, `{"exchange":"Demo Exchange","tick":%d,"instruments":[`, b.tick)
	for i, row := range b.rows {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, row...)
	}
	return append(out, "]}"...)
}

// boardDoc returns the document of a board of rows instruments after n ticks.
func boardDoc(rows, n int) []byte {
	b := newBoard(rows)
	for range n {
		b.next(4)
	}
	return b.doc()
}

// randomDoc returns a JSON document of about size bytes that hardly compresses.
func randomDoc(size int) []byte {
	raw := make([]byte, size*3/4)
	_, _ = rand.Read(raw)
	return []byte(`{"blob":"` + base64.StdEncoding.EncodeToString(raw) + `"}`)
}

// TestCompressRoundTrip compresses bodies of every kind and size and reads them back
// under a limit of exactly their size.
func TestCompressRoundTrip(t *testing.T) {
	t.Parallel()
	bodies := map[string][]byte{
		"empty":      {},
		"small":      []byte(`{"n":1}`),
		"board":      boardDoc(16, 1),
		"board 256K": boardDoc(1000, 7),
		"random 1M":  randomDoc(1 << 20),
		"binary":     bytes.Repeat([]byte{0, 0xff, 0x7f}, 5000),
	}
	for name, body := range bodies {
		data := compress(body)
		got, err := decompress(data, int64(len(body)), int64(len(body)))
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("%s: round trip gave %d bytes, %v", name, len(got), err)
		}
		t.Logf("%s: %d bytes stored as %d", name, len(body), len(data))
	}
}

// TestDecompressRefusesHostileEntries feeds decompress what a corrupt or hostile stream
// entry may hold: it refuses each with a clear error and never allocates much more than
// the limit.
func TestDecompressRefusesHostileEntries(t *testing.T) {
	t.Parallel()
	bomb := compress(make([]byte, 64<<20)) // 64 MiB of zeros in a few KiB
	body := boardDoc(16, 1)
	tests := []struct {
		name      string
		data      []byte
		size, max int64
		want      error
	}{
		{"size over max_body", compress(body), int64(len(body)), int64(len(body)) - 1, ErrStoredTooLarge},
		{"negative size", compress(body), -1, 1 << 20, ErrStoredTooLarge},
		{"bomb under a small size", bomb, 1000, 1 << 20, ErrStoredTooLarge},
		{"bomb under max_body", bomb, 1 << 20, 1 << 20, ErrStoredTooLarge},
		{"size says more", compress(body), int64(len(body)) + 10, 1 << 20, ErrStoredCorrupt},
		{"garbage", []byte("not zstd at all"), 100, 1 << 20, ErrStoredCorrupt},
		{"truncated", compress(body)[:20], int64(len(body)), 1 << 20, ErrStoredCorrupt},
	}
	for _, tc := range tests {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := decompress(tc.data, tc.size, tc.max)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v; want %v", tc.name, err, tc.want)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > uint64(tc.max)+4<<20 {
			t.Errorf("%s: allocated %d bytes under a limit of %d", tc.name, grew, tc.max)
		}
	}
}
