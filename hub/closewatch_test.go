package hub

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// waitSubscribers waits until the topic of h counts n subscribers, failing after 10 s.
func waitSubscribers(t *testing.T, h *Hub, n int) {
	t.Helper()
	tp := topicOf(t, h)
	deadline := time.Now().Add(10 * time.Second)
	for tp.subscribers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers; want %d", tp.subscribers(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// watched returns how many sockets the writers of h watch for their clients leaving.
func watched(h *Hub) int {
	n := 0
	for _, w := range h.writers {
		n += w.closes.watching()
	}
	return n
}

// TestClientLeavingEndsItsStream: a client that closes its connection, shuts down its
// side of it or resets it ends its stream; one that sends bytes is read and kept, and
// receives the next change.
func TestClientLeavingEndsItsStream(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	docs := []string{doc(0), doc(1)}
	ids := versions(t, docs)
	clients := serveClients(t, h, src, 4, nil)
	for _, c := range clients {
		go c.run()
	}
	src.send(t, docs[0])
	for _, c := range clients {
		c.waitID(t, ids[0], 10*time.Second)
	}
	closed, halfClosed, reset, talker := clients[0], clients[1], clients[2], clients[3]
	_ = closed.conn.Close()
	if err := halfClosed.conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := reset.conn.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	_ = reset.conn.Close()
	if _, err := talker.conn.Write(bytes.Repeat([]byte("chatter\n"), 8<<10)); err != nil {
		t.Fatal(err)
	}
	waitSubscribers(t, h, 1)
	src.send(t, docs[1])
	talker.waitID(t, ids[1], 10*time.Second)
	select {
	case <-halfClosed.ended():
	case <-time.After(10 * time.Second):
		t.Fatal("the stream of a client that shut down its side was not closed")
	}
	if n := watched(h); n > 1 {
		t.Fatalf("%d sockets watched for 1 stream", n)
	}
}

// TestStreamsComeAndGoOnReusedDescriptors opens and ends streams round after round, so
// that new sockets get the descriptors of those just closed: every new stream receives
// the change of its round and stays open until its client leaves, the stream kept
// throughout receives every change, and the streams watched are those open.
func TestStreamsComeAndGoOnReusedDescriptors(t *testing.T) {
	t.Parallel()
	const rounds, perRound = 40, 10
	h := newHub(t, Config{})
	src := newDocSource()
	docs := make([]string, rounds)
	for i := range docs {
		docs[i] = doc(i)
	}
	ids := versions(t, docs)
	keeper := serveClients(t, h, src, 1, nil)[0]
	go keeper.run()
	for r := range rounds {
		clients := serveClients(t, h, src, perRound, nil)
		for _, c := range clients {
			go c.run()
		}
		src.send(t, docs[r])
		keeper.waitID(t, ids[r], 10*time.Second)
		for _, c := range clients {
			c.waitID(t, ids[r], 10*time.Second)
		}
		if n := watched(h); n != 0 && n != perRound+1 {
			t.Fatalf("round %d: %d sockets watched for %d streams", r, n, perRound+1)
		}
		for i, c := range clients {
			if i%2 == 0 {
				_ = c.conn.(*net.TCPConn).SetLinger(0)
			}
			_ = c.conn.Close()
		}
		waitSubscribers(t, h, 1)
		if n := watched(h); n > 1 {
			t.Fatalf("round %d: %d sockets watched for 1 stream", r, n)
		}
	}
}
