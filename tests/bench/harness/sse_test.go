package main

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

const sampleStream = "retry: 3000\n\n" +
	": heartbeat\n\n" +
	"event: snapshot\nid: v1\ndata: {\"pad\":\"xx\",\"t\":\"T3_1700000000000000001\"}\n\n" +
	"event: patch\r\nid: v2\r\ndata: [{\"op\":\"replace\",\"path\":\"/t\",\r\ndata: \"value\":\"T4_1700000000000000002\"}]\r\n\r\n" +
	"id: 9:0\rdata: T7_5 and T12_6 and T9_7\r\r" +
	"event: upstream\ndata: {\"ok\":false}\n\n" +
	"data:T1_2\n\n"

type seen struct {
	kind  Kind
	seq   int64
	nanos int64
	mark  bool
	n     int
	id    string
}

func parseAll(t *testing.T, pieces []string) []seen {
	t.Helper()
	var out []seen
	var p Parser
	p.OnEvent = func(e Event) {
		out = append(out, seen{e.Kind, e.Seq, e.Nanos, e.HasMark, e.DataLen, p.LastID()})
	}
	for _, s := range pieces {
		p.Feed([]byte(s))
	}
	return out
}

func split(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

func TestParserEvents(t *testing.T) {
	want := []seen{
		{KindSnapshot, 3, 1700000000000000001, true, 41, "v1"},
		{KindPatch, 4, 1700000000000000002, true, 64, "v2"},
		{KindMessage, 12, 6, true, 23, "9:0"},
		{KindUpstream, 0, 0, false, 12, "9:0"},
		{KindMessage, 1, 2, true, 4, "9:0"},
	}
	for _, size := range []int{1, 2, 3, 7, 64, len(sampleStream)} {
		got := parseAll(t, split(sampleStream, size))
		if len(got) != len(want) {
			t.Fatalf("pieces of %d: got %d events %+v, want %d", size, len(got), got, len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("pieces of %d: event %d = %+v, want %+v", size, i, got[i], want[i])
			}
		}
	}
}

func TestBodyChunkedAndClose(t *testing.T) {
	chunked := "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5\r\ndata:\r\n8;x=y\r\n T1_2\n\n\r\n0\r\n\r\n"
	closed := "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" +
		"data: T1_2\n\n"
	for name, raw := range map[string]string{"chunked": chunked, "close": closed} {
		br := bufio.NewReaderSize(strings.NewReader(raw), 64)
		head, err := readHead(br)
		if err != nil || head.Status != 200 || head.ContentType != "text/event-stream" {
			t.Fatalf("%s: head %+v, %v", name, head, err)
		}
		var events []Event
		p := Parser{OnEvent: func(e Event) { events = append(events, e) }}
		b := NewBody(br, head)
		for range 100 {
			piece, err := b.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			p.Feed(piece)
		}
		if len(events) != 1 || events[0].Seq != 1 || events[0].Nanos != 2 {
			t.Errorf("%s: events %+v", name, events)
		}
	}
}
