package main

import (
	"strings"
	"testing"
)

func TestTCPExtPicksTheCounters(t *testing.T) {
	names := strings.Fields("TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPSynRetrans TCPOrigDataSent")
	values := strings.Fields("TcpExt: 0 1419 1419 1422 99")
	k, err := tcpExt(names, values)
	if err != nil {
		t.Fatal(err)
	}
	if k.ListenOverflows != 1419 || k.SynRetrans != 1422 {
		t.Fatalf("got %+v, want ListenOverflows 1419 and TCPSynRetrans 1422", k)
	}
	if _, err := tcpExt(names[:3], values[:3]); err == nil {
		t.Fatal("a TcpExt line without TCPSynRetrans gave no error")
	}
	if _, err := tcpExt(names, strings.Fields("TcpExt: 0 x 1 2 3")); err == nil {
		t.Fatal("a counter that is not a number gave no error")
	}
}

func TestReadKernelTCP(t *testing.T) {
	if _, err := readKernelTCP(); err != nil {
		t.Skipf("no /proc/net/netstat here: %v", err)
	}
}
