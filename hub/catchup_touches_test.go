package hub

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pollsse/caddy-poll-sse/diff"
)

// TestMergeCatchUpAcrossUnreadablePatch: a change read back from elsewhere whose patch
// cannot be read leaves no paths for a merge patch, so a merge_patch client resuming from
// before it gets a snapshot, and one resuming from after it still gets a merge patch.
func TestMergeCatchUpAcrossUnreadablePatch(t *testing.T) {
	t.Parallel()
	h := New(Config{Linger: time.Hour})
	defer h.Close()
	keep := subscribeIn(t, h, idleSource{}, "", Snapshot)
	tp := topicOf(t, h)
	pad := strings.Repeat("p", 200)
	var versions []*diff.Version
	for i, patch := range []string{"", `[{"op":"replace","path":"a","value":1}]`, `[{"op":"replace","path":"/a","value":2}]`} {
		v, err := diff.Parse(fmt.Appendf(nil, `{"a":%d,"pad":%q}`, i, pad))
		if err != nil {
			t.Fatal(err)
		}
		var p []byte
		if patch != "" {
			p = []byte(patch)
		}
		tp.Publish(diff.NewChange(v, p, nil))
		versions = append(versions, v)
	}
	keep.waitDoc(t, string(versions[2].JSON))
	for _, tc := range []struct {
		from int
		want string
	}{{0, "snapshot"}, {1, "patch"}} {
		c := subscribeIn(t, h, idleSource{}, versions[tc.from].ID, MergePatch)
		c.doc = versions[tc.from].JSON
		c.waitDoc(t, string(versions[2].JSON))
		if got := c.types(0); len(got) != 1 || got[0] != tc.want {
			t.Errorf("resuming from version %d: got %v; want a %s", tc.from, got, tc.want)
		}
	}
}
