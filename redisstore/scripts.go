package redisstore

import "github.com/redis/go-redis/v9"

// The scripts touch only the keys they are given, a loop's lease and stream, which share
// a hash tag: they run on a Redis Cluster as on a single server.
var (
	// renewLease extends the lease if ARGV[1] still holds it; releaseLease frees it.
	renewLease   = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
	releaseLease = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

	// appendEntry appends a poll's outcome to the stream KEYS[2], fenced by the lease
	// KEYS[1]: nothing is written unless ARGV[1] holds the lease, and nothing that says
	// what the stream's last entry says already. Every entry carries the digest ("sum")
	// of the stream's current body: a body entry its own, a health entry the one of the
	// entry before it.
	//
	//	ARGV[2]  the stream's MAXLEN (approximate)
	//	ARGV[3]  "body": ARGV[4] the body's digest, then, once asked for, ARGV[5] its
	//	         size and ARGV[6] the compressed body
	//	         "fail": ARGV[4] the HTTP status, ARGV[5] the reason
	//
	// It returns appendRefused, appendNothing, appendDone or appendWantBody.
	appendEntry = redis.NewScript(`
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return -1 end
local sum, status, err = "", "", ""
local last = redis.call("XREVRANGE", KEYS[2], "+", "-", "COUNT", 1)[1]
if last then
	local f = last[2]
	for i = 1, #f, 2 do
		if f[i] == "sum" then sum = f[i + 1]
		elseif f[i] == "status" then status = f[i + 1]
		elseif f[i] == "error" then err = f[i + 1] end
	end
end
local function add(...)
	redis.call("XADD", KEYS[2], "MAXLEN", "~", ARGV[2], "*", ...)
	return 1
end
if ARGV[3] == "fail" then
	if err == ARGV[5] and status == ARGV[4] then return 0 end
	return add("sum", sum, "status", ARGV[4], "error", ARGV[5])
end
if ARGV[4] == sum then
	if err ~= "" then return add("sum", sum, "status", "200", "error", "") end
	return 0
end
if #ARGV < 6 then return 2 end
return add("sum", ARGV[4], "size", ARGV[5], "body", ARGV[6])
`)
)

// Answers of appendEntry.
const (
	appendRefused  = -1 // the lease is not this term's: the node must stop polling
	appendNothing  = 0  // the stream says so already
	appendDone     = 1  // appended
	appendWantBody = 2  // the stream's body differs: send the compressed body
)
