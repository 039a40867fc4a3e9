package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Server names.
const (
	PollSSE  = "poll_sse"
	Nchan    = "nchan"
	Baseline = "go-baseline"
)

// Server is one running server under test and the way to publish a change to it.
type Server struct {
	Name      string
	Addr      string // where subscribers connect
	Path      string // the subscribe path
	Snapshot  bool   // the first event of a stream is a snapshot of the document
	AdminAddr string // poll_sse: Caddy's admin endpoint, for pprof
	child     *Child
	publish   func(seq int64, pad string) (int64, error)
	up        *Upstream // poll_sse: the document it polls
}

// Publish makes change seq: pad is the document's new pad, or "" for the usual one. It
// returns T0, the change's publish time in Unix nanoseconds, carried in its marker.
func (s *Server) Publish(seq int64, pad string) (int64, error) { return s.publish(seq, pad) }

// AwaitPublished waits until the change seq is committed to the server, so that the next
// one is its own change: for poll_sse until the upstream has served it; for the others a
// publish that returned is committed already.
func (s *Server) AwaitPublished(seq int64, timeout time.Duration) error {
	if s.up == nil {
		return nil
	}
	return s.up.WaitServed(seq, timeout)
}

// Usage is the server's RSS and CPU, summed over its processes.
func (s *Server) Usage() (Usage, error) { return s.child.Usage() }

// Stop stops the server's processes.
func (s *Server) Stop() { s.child.Stop() }

// publisher posts change bodies to the servers over kept-alive connections.
var publisher = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true},
}

// post sends body to url with the given header and checks the status is 2xx.
func post(url, body string, header map[string]string) error {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := publisher.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s %s", url, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// pokeSecret is the poke secret in the generated Caddyfile.
const pokeSecret = "bench-secret"

// caddyfile is the poll_sse configuration.
const caddyfile = `{
	admin %s
	auto_https off
	persist_config off
}

http://%s {
	poll_sse %s {
		interval %s
		poke %s
		heartbeat 15s
	}
}
`

// StartPollSSE runs the built Caddy with poll_sse polling up every interval.
func StartPollSSE(caddy, dir string, up *Upstream, interval time.Duration) (*Server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "Caddyfile")
	text := fmt.Sprintf(caddyfile, admin, addr, up.URL(), interval, pokeSecret)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, err
	}
	argv := []string{caddy, "run", "--config", conf, "--adapter", "caddyfile"}
	child, err := StartChild(PollSSE, argv, filepath.Join(dir, "caddy.log"), addr)
	if err != nil {
		return nil, err
	}
	s := &Server{Name: PollSSE, Addr: addr, Path: "/", Snapshot: true, AdminAddr: admin, child: child, up: up}
	s.publish = func(seq int64, pad string) (int64, error) {
		if pad == "" {
			pad = basePad(seq)
		}
		t0 := time.Now().UnixNano()
		up.Set(seq, t0, pad)
		return t0, post("http://"+addr+"/", "", map[string]string{"Poll-SSE-Poke": pokeSecret})
	}
	return s, nil
}

// nginxConf is the Nchan configuration.
const nginxConf = `load_module %s;
daemon off;
user root;
worker_processes %s;
worker_rlimit_nofile 20000;
pid %s/nginx.pid;
error_log %s/error.log warn;
events {
	worker_connections 20000;
	multi_accept on;
}
http {
	access_log off;
	client_body_temp_path %s/body;
	client_body_buffer_size 64k;
	client_max_body_size 1m;
	server {
		listen %s backlog=4096;
		location = /sub {
			nchan_subscriber eventsource;
			nchan_channel_id bench;
			nchan_subscriber_first_message newest;
		}
		location = /pub {
			nchan_publisher;
			nchan_channel_id bench;
		}
	}
}
`

// StartNchan runs nginx with the Nchan module and the given worker_processes.
func StartNchan(nginx, module, dir, workers string) (*Server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	text := fmt.Sprintf(nginxConf, module, workers, dir, dir, dir, addr)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, err
	}
	argv := []string{nginx, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log")}
	child, err := StartChild(Nchan, argv, filepath.Join(dir, "nginx.out"), addr)
	if err != nil {
		return nil, err
	}
	s := &Server{Name: Nchan, Addr: addr, Path: "/sub", child: child}
	s.publish = postPatch("http://" + addr + "/pub")
	return s, nil
}

// StartBaseline runs the plain Go broadcaster.
func StartBaseline(bin, dir string) (*Server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	child, err := StartChild(Baseline, []string{bin, "-addr", addr}, filepath.Join(dir, "baseline.log"), addr)
	if err != nil {
		return nil, err
	}
	s := &Server{Name: Baseline, Addr: addr, Path: "/sub", child: child}
	s.publish = postPatch("http://" + addr + "/pub")
	return s, nil
}

// postPatch publishes a change as the JSON Patch poll_sse would send for it.
func postPatch(url string) func(int64, string) (int64, error) {
	return func(seq int64, pad string) (int64, error) {
		t0 := time.Now().UnixNano()
		return t0, post(url, patchBody(seq, t0, pad), nil)
	}
}
