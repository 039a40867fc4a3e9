package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/diff/difftest"
	"github.com/pollsse/caddy-poll-sse/sse"
)

// The Node oracle replays the changes of the diff package, sent through the sse wire
// format, with the JavaScript appliers a browser client would use (fast-json-patch,
// json-merge-patch; see tests/oracle/apply.mjs). It needs no Caddy: it checks the
// documents and patches the streams carry.

// oracleEvent is one event as a client receives it.
type oracleEvent struct {
	Event  string `json:"event"`
	Data   string `json:"data"`
	Format string `json:"format"`
}

// oracleCase starts from the document A, applies Events, and must end with B.
type oracleCase struct {
	Name   string        `json:"name"`
	A      string        `json:"a"`
	Events []oracleEvent `json:"events"`
	B      string        `json:"b"`
}

// nodeModules are the packages apply.mjs imports, relative to the repository root.
var nodeModules = []string{"fast-json-patch", "json-merge-patch"}

func TestNodeOracle(t *testing.T) {
	t.Parallel()
	requireNode(t)
	cases, err := oracleCases()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "cases.json")
	data, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	runOracle(t, file, len(cases))
}

// requireNode fails the test when node or the oracle's packages are missing.
func requireNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed (Node 20 or later); run tests/setup.sh")
	}
	for _, m := range nodeModules {
		if _, err := os.Stat(filepath.Join("..", "node_modules", m, "package.json")); err != nil {
			t.Fatalf("node_modules/%s is missing: run tests/setup.sh", m)
		}
	}
}

// runOracle runs apply.mjs on the cases in file and checks that it passed all n.
func runOracle(t *testing.T, file string, n int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("node", filepath.Join("oracle", "apply.mjs"), file)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := strings.TrimSpace(stdout.String())
	if err != nil {
		t.Fatalf("node oracle: %v\n%s\n%s", err, truncate(out, 20000), truncate(stderr.String(), 4000))
	}
	var summary struct{ Cases, Failures int }
	last := out[strings.LastIndexByte(out, '\n')+1:]
	if err := json.Unmarshal([]byte(last), &summary); err != nil || summary.Cases != n || summary.Failures != 0 {
		t.Fatalf("node oracle checked %+v of %d cases (%v):\n%s", summary, n, err, truncate(out, 20000))
	}
	t.Logf("node oracle: %d cases passed", n)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "\n…"
}

// oracleCases returns the cases: two (json_patch and merge_patch) for each suite pair,
// random pair and keyed pair, and four catch-ups per seed of 20 random versions.
func oracleCases() ([]oracleCase, error) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	var cases []oracleCase
	keyed := diff.Options{ArrayKeys: []diff.ArrayKey{{Pointer: "/items", Member: "id"}}}
	sets := []struct {
		pairs []difftest.Pair
		opts  diff.Options
	}{
		{difftest.SuitePairs(), diff.Options{}},
		{difftest.RandomPairs(1, n), diff.Options{}},
		{difftest.KeyedPairs(1, n/5), keyed},
	}
	for _, set := range sets {
		for _, p := range set.pairs {
			cs, err := pairCases(p, set.opts)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.Name, err)
			}
			cases = append(cases, cs...)
		}
	}
	for seed := range int64(n / 100) {
		cs, err := catchUpCases(seed)
		if err != nil {
			return nil, fmt.Errorf("versions/%d: %w", seed, err)
		}
		cases = append(cases, cs...)
	}
	return cases, nil
}

// pairCases streams the pair and returns what a json_patch and a merge_patch client
// receive after the first version.
func pairCases(p difftest.Pair, opts diff.Options) ([]oracleCase, error) {
	tr, err := diff.NewTracker(opts)
	if err != nil {
		return nil, err
	}
	first, _, err := tr.Update(p.A)
	if err != nil {
		return nil, err
	}
	ch, changed, err := tr.Update(p.B)
	if err != nil {
		return nil, err
	}
	var patches, merges []diff.Change
	if changed {
		patches, merges = []diff.Change{ch}, []diff.Change{ch}
	}
	return clientCases(p.Name, first.Version, tr.Current(), patches, merges)
}

// clientCases returns the json_patch case that applies the patches of changes, and the
// merge_patch case that applies the merge patches of merges, or their snapshots where
// there is none, from the version from to the version to.
func clientCases(name string, from, to *diff.Version, changes, merges []diff.Change) ([]oracleCase, error) {
	jp := oracleCase{Name: name + " [json_patch]", A: string(from.JSON), B: string(to.JSON), Events: []oracleEvent{}}
	mp := oracleCase{Name: name + " [merge_patch]", A: jp.A, B: jp.B, Events: []oracleEvent{}}
	for _, ch := range changes {
		ev, err := wireEvent("patch", ch.Version.ID, ch.Patch, "json_patch")
		if err != nil {
			return nil, err
		}
		jp.Events = append(jp.Events, ev)
	}
	for _, ch := range merges {
		ev, err := mergeEvent(ch.Version, ch.MergePatch())
		if err != nil {
			return nil, err
		}
		mp.Events = append(mp.Events, ev)
	}
	return []oracleCase{jp, mp}, nil
}

// mergeEvent is the merge_patch client's event for a change to v: the merge patch, or a
// snapshot when there is none.
func mergeEvent(v *diff.Version, merge []byte) (oracleEvent, error) {
	if merge == nil {
		return wireEvent("snapshot", v.ID, v.JSON, "merge_patch")
	}
	return wireEvent("patch", v.ID, merge, "merge_patch")
}

// wireEvent encodes an event in the event-stream format and decodes it as a browser
// does, so that the oracle gets the data a client would.
func wireEvent(name, id string, data []byte, format string) (oracleEvent, error) {
	n, err := sse.NewName(name)
	if err != nil {
		return oracleEvent{}, err
	}
	i, err := sse.NewID(id)
	if err != nil {
		return oracleEvent{}, err
	}
	ev, err := sse.NewEvent(n, i, data)
	if err != nil {
		return oracleEvent{}, err
	}
	msg, err := sse.NewDecoder(bytes.NewReader(ev.Encode())).Next()
	if err != nil {
		return oracleEvent{}, err
	}
	if msg.Type != name || msg.LastEventID != id {
		return oracleEvent{}, fmt.Errorf("event %s id %s came back as %s id %s", name, id, msg.Type, msg.LastEventID)
	}
	return oracleEvent{Event: msg.Type, Data: msg.Data, Format: format}, nil
}

// catchUpCases streams 20 random versions and returns a client that receives every
// change, and one that is caught up from the first version with one event, in each
// format.
func catchUpCases(seed int64) ([]oracleCase, error) {
	var tr diff.Tracker
	var changes []diff.Change
	var first *diff.Version
	for i, body := range difftest.RandomVersions(seed, 20) {
		ch, changed, err := tr.Update(body)
		if err != nil {
			return nil, fmt.Errorf("version %d: %w", i, err)
		}
		switch {
		case i == 0:
			first = ch.Version
		case changed:
			changes = append(changes, ch)
		}
	}
	name := fmt.Sprintf("versions/%d", seed)
	steps, err := clientCases(name+" every change", first, tr.Current(), changes, changes)
	if err != nil {
		return nil, err
	}
	joined, err := joinedCases(name+" caught up", first, tr.Current(), changes)
	if err != nil {
		return nil, err
	}
	return append(steps, joined...), nil
}

// joinedCases returns the catch-up of a client at from: one joined patch, and the merge
// patch of it or a snapshot.
func joinedCases(name string, from, to *diff.Version, changes []diff.Change) ([]oracleCase, error) {
	if len(changes) == 0 {
		return clientCases(name, from, to, nil, nil)
	}
	patches := make([][]byte, len(changes))
	for i, ch := range changes {
		patches[i] = ch.Patch
	}
	joined := diff.JoinPatches(patches)
	cs, err := clientCases(name, from, to, []diff.Change{{Version: to, Patch: joined}}, nil)
	if err != nil {
		return nil, err
	}
	merge, ok, err := diff.MergeFromPatch(joined, to)
	if err != nil {
		return nil, fmt.Errorf("MergeFromPatch: %w", err)
	}
	if !ok {
		merge = nil
	}
	ev, err := mergeEvent(to, merge)
	if err != nil {
		return nil, err
	}
	cs[1].Events = append(cs[1].Events, ev)
	return cs, nil
}
