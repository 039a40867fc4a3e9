package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// kernelTCP holds the machine-wide TCP counters of /proc/net/netstat that show connections
// the kernel turned away while a listener's accept queue was full: each such client waits
// for its SYN to be sent again, a second or more later.
type kernelTCP struct {
	ListenOverflows, SynRetrans int64
}

// readKernelTCP reads the counters; on a machine without /proc/net/netstat it returns an
// error and the storm reports no figure.
func readKernelTCP() (kernelTCP, error) {
	f, err := os.Open("/proc/net/netstat")
	if err != nil {
		return kernelTCP{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		names := strings.Fields(sc.Text())
		if len(names) == 0 || names[0] != "TcpExt:" || !sc.Scan() {
			continue
		}
		return tcpExt(names, strings.Fields(sc.Text()))
	}
	return kernelTCP{}, fmt.Errorf("/proc/net/netstat holds no TcpExt counters")
}

// tcpExt picks the counters out of the TcpExt header line and its values line.
func tcpExt(names, values []string) (kernelTCP, error) {
	var k kernelTCP
	want := map[string]*int64{"ListenOverflows": &k.ListenOverflows, "TCPSynRetrans": &k.SynRetrans}
	for i, name := range names {
		p, ok := want[name]
		if !ok || i >= len(values) {
			continue
		}
		v, err := strconv.ParseInt(values[i], 10, 64)
		if err != nil {
			return kernelTCP{}, fmt.Errorf("/proc/net/netstat %s: %w", name, err)
		}
		*p = v
		delete(want, name)
	}
	if len(want) > 0 {
		return kernelTCP{}, fmt.Errorf("/proc/net/netstat lacks %d of the counters", len(want))
	}
	return k, nil
}

// selfCPU returns the processor time this process (the load generator) has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
