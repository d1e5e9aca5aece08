-- wrk script: authenticated `{ me { id username } }`, checking each body.
-- TOKEN is one person's session: every request is that person's. TOKENS
-- (tokens separated by spaces) are many people's: the requests take them in
-- turn, so concurrent requests are mostly different people's.
-- The request is set at top level: wrk builds its static request from
-- these fields in every thread.
wrk.method = "POST"
wrk.path = "/graphql"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"query":"{ me { id username } }"}'
local many = os.getenv("TOKENS")
if many and many ~= "" then
  local requests = {}
  for token in many:gmatch("%S+") do
    local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }
    table.insert(requests, wrk.format("POST", "/graphql", headers, wrk.body))
  end
  local next_one = 0
  function request()
    next_one = next_one % #requests + 1
    return requests[next_one]
  end
else
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
end

failures = 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
  if status ~= 200 or not body:find('"username":"load_me', 1, true) then failures = failures + 1 end
end
function done(summary, latency, requests)
  local failed = 0
  for _, t in ipairs(threads) do failed = failed + t:get("failures") end
  io.write(string.format("CHECK bad answers: %d of %d\n", failed, summary.requests))
  io.write(string.format("RESULT p50=%.2fms p99=%.2fms rps=%.1f\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests / (summary.duration / 1e6)))
end
