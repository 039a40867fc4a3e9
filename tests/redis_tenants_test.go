package tests

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pollsse/caddy-poll-sse/redisstore/redistest"
)

// tenantUpstream is one URL that answers each tenant with its own data: a GET by its
// X-Api-Key header, a POST by its body. Each tenant's document is an upstream of its own.
type tenantUpstream struct {
	srv  *httptest.Server
	docs map[string]*upstream // by "key " + X-Api-Key or "body " + body
}

func newTenantUpstream(t *testing.T, tenants ...string) *tenantUpstream {
	t.Helper()
	tu := &tenantUpstream{docs: map[string]*upstream{}}
	for _, name := range tenants {
		tu.docs[name] = newUpstream(t, tenantDoc(name, 0))
	}
	tu.srv = httptest.NewServer(http.HandlerFunc(tu.serve))
	t.Cleanup(tu.srv.Close)
	return tu
}

func (tu *tenantUpstream) serve(w http.ResponseWriter, r *http.Request) {
	tenant := "key " + r.Header.Get("X-Api-Key")
	if r.Method == http.MethodPost {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<10))
		tenant = "body " + string(b)
	}
	u := tu.docs[tenant]
	if u == nil {
		http.Error(w, "no such tenant", http.StatusForbidden)
		return
	}
	u.serve(w, r)
}

// tenantDoc is the document of tenant at rev: its secret names it.
func tenantDoc(tenant string, rev int) map[string]any {
	return map[string]any{"tenant": tenant, "secret": secretOf(tenant), "rev": rev}
}

func secretOf(tenant string) string { return "data of " + tenant }

// tenantRoute is a route of the tenant test: a path, the tenant it polls as, and the
// poll_sse lines that make the upstream see it as that tenant.
type tenantRoute struct {
	path, tenant string
	lines        []string
}

// tenantRoutes are the routes of node i: two GET routes on the same URL with different
// `header_up X-Api-Key`, two POST routes with different bodies, and /mine, whose key
// differs from node to node.
func tenantRoutes(i int) []tenantRoute {
	mine := "key key-A"
	if i == 1 {
		mine = "key key-B"
	}
	return []tenantRoute{
		{"/a", "key key-A", []string{"header_up X-Api-Key key-A"}},
		{"/b", "key key-B", []string{"header_up X-Api-Key key-B"}},
		{"/c", "body search=C", []string{"method POST", "body search=C"}},
		{"/d", "body search=D", []string{"method POST", "body search=D"}},
		{"/mine", mine, []string{"header_up X-Api-Key " + strings.TrimPrefix(mine, "key ")}},
	}
}

// tenantSite is node i's site body: each route a handle block on the same upstream URL
// and the same Redis.
func tenantSite(u *tenantUpstream, store string, i int) string {
	var b strings.Builder
	for _, rt := range tenantRoutes(i) {
		lines := append([]string{"interval " + deployInterval.String(), store}, rt.lines...)
		fmt.Fprintf(&b, "handle %s {\n%s\n}\n", rt.path, indent(pollSSE(u.srv.URL+"/state.json", lines...)))
	}
	return b.String()
}

// TestRedisTenantIsolation runs three nodes on one Redis, each with routes that poll the
// same URL as different tenants: by a header_up API key, by a POST body, and by a key
// that differs between the nodes' configs. Every tenant's data changes three times;
// every client goes through exactly its own tenant's documents, and no event it gets
// holds another tenant's secret.
func TestRedisTenantIsolation(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	tu := newTenantUpstream(t, "key key-A", "key key-B", "body search=C", "body search=D")
	store := storeRedis([]string{r.Addr})
	nodes := startNodes(t, 3, func(i int) string { return tenantSite(tu, store, i) })

	type follower struct {
		tr     *docTrace
		tenant string
	}
	var followers []follower
	for i, n := range nodes {
		for _, rt := range tenantRoutes(i) {
			for k := range 2 {
				name := fmt.Sprintf("node %d %s client %d (%s)", i, rt.path, k, rt.tenant)
				c := dialSSE(t, n.url(""), withPath(rt.path))
				followers = append(followers, follower{newTrace(name, c), rt.tenant})
			}
		}
	}
	served := map[string][][]byte{}
	for rev := range 4 {
		for tenant, u := range tu.docs {
			served[tenant] = append(served[tenant], u.set(t, tenantDoc(tenant, rev)))
		}
		for _, f := range followers {
			f.tr.until(tu.docs[f.tenant].document(), deployWait, onlyTenant(t, f.tr.name, f.tenant))
		}
	}
	for _, f := range followers {
		f.tr.checkSequence(t, served[f.tenant])
	}
}

// onlyTenant fails the test when an event or the document it leads to holds the data of
// a tenant other than tenant.
func onlyTenant(t *testing.T, who, tenant string) func(doc []byte, r received) {
	return func(doc []byte, r received) {
		for _, other := range []string{"key key-A", "key key-B", "body search=C", "body search=D"} {
			if other == tenant {
				continue
			}
			if s := secretOf(other); strings.Contains(r.Data, s) || strings.Contains(string(doc), s) {
				t.Fatalf("%s got %s event %s with the data of %q:\nevent: %.300s\ndocument: %.300s",
					who, r.Type, r.LastEventID, other, r.Data, doc)
			}
		}
		if !strings.Contains(string(doc), secretOf(tenant)) {
			t.Fatalf("%s holds a document without its own data: %.300s", who, doc)
		}
	}
}
