-- wrk script of `replayrec bench serve`: GET /v1/recommendations/<user> over a list of users.
-- args: MODE USERS_FILE [SEED]; MODE = uncached (Cache-Control: no-cache, users in turn: rapid switching),
-- cached (a small hot set, Zipf-like repeats: normal browsing), erratic (a POST /v1/events with an
-- out-of-order timestamp every 10th request, between cached reads).
local users = {}
local mode = "uncached"
local n = 0
local counter = 0

function init(args)
  mode = args[1] or "uncached"
  local f = assert(io.open(args[2], "r"))
  for line in f:lines() do
    if #line > 0 then users[#users + 1] = line end
  end
  f:close()
  n = #users
  math.randomseed(tonumber(args[3] or "7") + (wrk.thread and 0 or 0))
  counter = math.random(1, n)
end

local function zipf_pick()
  -- P(rank r) ~ 1/r over the list: the u^2 trick keeps the head hot
  local u = math.random()
  local r = math.floor(n ^ (u * u))
  if r < 1 then r = 1 end
  if r > n then r = n end
  return users[r]
end

function request()
  counter = counter + 1
  if mode == "uncached" then
    local user = users[(counter % n) + 1]
    return wrk.format("GET", "/v1/recommendations/" .. user .. "?k=10", {["Cache-Control"] = "no-cache"})
  end
  if mode == "erratic" and counter % 10 == 0 then
    local user = users[math.random(1, n)]
    local year = 2000 + math.random(0, 14)
    local body = string.format(
      '{"user":"%s","item":"bench-unknown-item","action":"view","event_time":"%d-0%d-1%dT0%d:00:00Z"}',
      user, year, math.random(1, 9), math.random(0, 9), math.random(0, 9))
    return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"}, body)
  end
  return wrk.format("GET", "/v1/recommendations/" .. zipf_pick() .. "?k=10")
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\nRESULT {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
