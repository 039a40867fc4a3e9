package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Response is the head of an HTTP/1.1 response read from a raw connection.
type Response struct {
	Status      int
	ContentType string
	Chunked     bool
	Length      int64 // Content-Length, or -1 when the body ends at close or is chunked
}

// readHead reads the status line and the header fields.
func readHead(br *bufio.Reader) (Response, error) {
	r := Response{Length: -1}
	line, err := readLine(br)
	if err != nil {
		return r, fmt.Errorf("status line: %w", err)
	}
	f := bytes.Fields(line)
	if len(f) < 2 || !bytes.HasPrefix(f[0], []byte("HTTP/1.")) {
		return r, fmt.Errorf("bad status line %q", line)
	}
	if r.Status, err = strconv.Atoi(string(f[1])); err != nil {
		return r, fmt.Errorf("bad status line %q", line)
	}
	for range 200 {
		line, err := readLine(br)
		if err != nil {
			return r, fmt.Errorf("header: %w", err)
		}
		if len(line) == 0 {
			return r, nil
		}
		r.header(line)
	}
	return r, errors.New("too many header fields")
}

// header records one header field line, if it is one the reader needs.
func (r *Response) header(line []byte) {
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		return
	}
	value = bytes.TrimSpace(value)
	switch string(bytes.ToLower(bytes.TrimSpace(name))) {
	case "content-type":
		r.ContentType = string(value)
	case "transfer-encoding":
		r.Chunked = bytes.Contains(bytes.ToLower(value), []byte("chunked"))
	case "content-length":
		if n, err := strconv.ParseInt(string(value), 10, 64); err == nil {
			r.Length = n
		}
	}
}

// readLine reads one line without its CRLF or LF.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
	return line, nil
}

// Body yields an HTTP/1.1 response body as it arrives, chunked, of a known length, or
// ending at close, without copying it out of the connection's buffer.
type Body struct {
	br      *bufio.Reader
	chunked bool
	remain  int64 // bytes left in the current chunk, or in the body when it has a length
	crlf    bool  // a chunk's data ended and its CRLF is still to read
	done    bool
}

// NewBody reads the body described by r from br.
func NewBody(br *bufio.Reader, r Response) *Body {
	b := &Body{br: br, chunked: r.Chunked, remain: -1}
	if !r.Chunked && r.Length >= 0 {
		b.remain = r.Length
	}
	return b
}

// Next returns the next piece of the body. The slice is valid until the next call on b or
// on its reader. At the end of the body it returns io.EOF.
func (b *Body) Next() ([]byte, error) {
	if b.done {
		return nil, io.EOF
	}
	if b.chunked && b.remain <= 0 {
		if err := b.nextChunk(); err != nil {
			return nil, err
		}
		if b.done {
			return nil, io.EOF
		}
	}
	if b.remain == 0 {
		b.done = true
		return nil, io.EOF
	}
	if _, err := b.br.Peek(1); err != nil {
		if err == io.EOF && b.remain > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := int64(b.br.Buffered())
	if b.remain > 0 && n > b.remain {
		n = b.remain
	}
	p, _ := b.br.Peek(int(n))
	_, _ = b.br.Discard(int(n))
	if b.remain > 0 {
		b.remain -= n
	}
	return p, nil
}

// nextChunk reads the CRLF that ends the last chunk and the size line of the next; a zero
// size ends the body after its trailer.
func (b *Body) nextChunk() error {
	if b.crlf {
		line, err := readLine(b.br)
		if err != nil {
			return unexpected(err)
		}
		if len(line) != 0 {
			return fmt.Errorf("chunk not followed by CRLF: %q", line)
		}
		b.crlf = false
	}
	line, err := readLine(b.br)
	if err != nil {
		return unexpected(err)
	}
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
	if err != nil || size < 0 {
		return fmt.Errorf("bad chunk size %q", line)
	}
	if size == 0 {
		b.done = true
		return b.trailer()
	}
	b.remain, b.crlf = size, true
	return nil
}

// trailer skips the trailer fields and the final empty line.
func (b *Body) trailer() error {
	for range 100 {
		line, err := readLine(b.br)
		if err != nil {
			return unexpected(err)
		}
		if len(line) == 0 {
			return nil
		}
	}
	return errors.New("trailer too long")
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
