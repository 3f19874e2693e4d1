-- wrk script for POST /get-online-features (Feast 0.67 HTTP API).
--
-- Every request asks for FEATURES features of VIEW for ENTITIES driver ids
-- drawn at random (with replacement) from ID_MIN..ID_MAX, chosen here in Lua.
-- done() prints one machine-readable line:
--   RESULT requests=N duration_us=N rps=X p50_us=N p90_us=N p99_us=N max_us=N
--          errors_connect=N errors_read=N errors_write=N errors_status=N errors_timeout=N
--
-- Environment: ENTITIES [1], ID_MIN [1001], ID_MAX [2000], VIEW
-- [driver_hourly_stats], FEATURES (comma-separated names) [the ten features
-- of the driver-stats example], TOKEN (when set and not empty, every request
-- carries `Authorization: Bearer $TOKEN`) [unset].

local entities = tonumber(os.getenv("ENTITIES") or "1")
local id_min = tonumber(os.getenv("ID_MIN") or "1001")
local id_max = tonumber(os.getenv("ID_MAX") or "2000")
local view = os.getenv("VIEW") or "driver_hourly_stats"
local names = os.getenv("FEATURES") or
    "conv_rate,acc_rate,avg_daily_trips,trips_today,rating," ..
    "earnings_today,online_minutes,completed_trips,city,is_premium"

local refs = {}
for name in string.gmatch(names, "[^,]+") do
    refs[#refs + 1] = '"' .. view .. ":" .. name .. '"'
end
local prefix = '{"features":[' .. table.concat(refs, ",") .. '],"entities":{"driver_id":['
local suffix = "]}}"
local headers = { ["Content-Type"] = "application/json" }
local token = os.getenv("TOKEN")
if token and token ~= "" then
    headers["Authorization"] = "Bearer " .. token
end
local ids = {}

-- Each wrk thread has its own Lua state; seed each one differently.
local seeded = false
local thread_no = 0

function setup(thread)
    thread_no = thread_no + 1
    thread:set("thread_seed", thread_no)
end

function request()
    if not seeded then
        math.randomseed(os.time() * 1000 + (thread_seed or 0) * 7919)
        seeded = true
    end
    for i = 1, entities do
        ids[i] = math.random(id_min, id_max)
    end
    return wrk.format("POST", "/get-online-features", headers, prefix .. table.concat(ids, ",") .. suffix)
end

function done(summary, latency, requests)
    local e = summary.errors
    local secs = summary.duration / 1e6
    io.write(string.format(
        "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
        "errors_connect=%d errors_read=%d errors_write=%d errors_status=%d errors_timeout=%d\n",
        summary.requests, summary.duration, summary.requests / secs,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
        e.connect, e.read, e.write, e.status, e.timeout))
end
