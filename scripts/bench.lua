-- bench.lua - wrk script for scripts/bench: POST a real SDK request with a fresh event_id in
-- every request (the store event's, or the envelope header's and its event item's).
-- Usage: wrk ... -s scripts/bench.lua URL -- BODY_FILE HEADERS_FILE PATH
--   BODY_FILE     the decoded store event JSON or the envelope (scripts/bench extracts it from
--                 the SDK fixtures)
--   HEADERS_FILE  "Name: value" lines sent with every request (Host/Content-Length are wrk's)
--   PATH          request target, e.g. /api/20/store/ or /api/20/envelope/?sentry_key=...
-- done() prints one line "BENCH_JSON {...}" (counts, socket errors, non-2xx/3xx, latency in us)
-- that scripts/bench parses.

local threads = {}
local parts, headers, path
local counter = 0

local function read_file(name)
	local f = assert(io.open(name, "rb"))
	local s = f:read("*a")
	f:close()
	return s
end

-- The body cut at every occurrence of its own event id, so each request gets a new one cheaply.
local function split_on_id(body)
	local id = body:match('"event_id"%s*:%s*"(%x+)"')
	local out, pos = {}, 1
	if id == nil then
		return { body }
	end
	while true do
		local s, e = body:find(id, pos, true)
		if s == nil then
			break
		end
		out[#out + 1] = body:sub(pos, s - 1)
		pos = e + 1
	end
	out[#out + 1] = body:sub(pos)
	return out
end

function setup(thread)
	thread:set("tid", #threads + 1)
	threads[#threads + 1] = thread
end

function init(args)
	parts = split_on_id(read_file(args[1]))
	headers = {}
	for line in read_file(args[2]):gmatch("[^\r\n]+") do
		local k, v = line:match("^([^:]+):%s*(.*)$")
		if k ~= nil then
			headers[k] = v
		end
	end
	path = args[3]
end

function request()
	local body = parts[1]
	counter = counter + 1
	if #parts > 1 then
		-- 32 hex digits: thread number, then a decimal counter (decimal digits are hex digits)
		body = table.concat(parts, string.format("%08x%024d", tid or 0, counter))
	end
	return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format('BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
		'"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
		'"latency_us": {"p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d, "mean": %.1f}}\n',
		summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
		latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
		latency.max, latency.mean))
end
