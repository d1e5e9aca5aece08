-- wrk script: each request signs up a fresh account or signs one in,
-- alternating, and checks the answer's body (not just the status).
local counter = 0
local thread_id = 0
failures = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  thread_id = id
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

local version = os.getenv("POLICY_VERSION") or "2026-11-01"

function request()
  counter = counter + 1
  local n = math.floor((counter + 1) / 2)
  local name = string.format("load_%d_%d", thread_id, n)
  local body
  if counter % 2 == 1 then
    body = string.format('{"query":"mutation($i: SignupInput!) { signup(input: $i) { accepted } }","variables":{"i":{"username":"%s","email":"%s@example.org","password":"a load test passphrase","acceptPolicyVersion":"%s","age":"ADULT"}}}', name, name, version)
  else
    body = string.format('{"query":"mutation { login(input: { login: \\"%s\\", password: \\"a load test passphrase\\" }) { token } }"}', name)
  end
  return wrk.format(nil, "/graphql", nil, body)
end

function response(status, headers, body)
  if status ~= 200 or not (body:find('"accepted":true', 1, true) or body:find('"token":"', 1, true)) then
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  local failed = 0
  for _, t in ipairs(threads) do failed = failed + t:get("failures") end
  io.write(string.format("CHECK bad answers: %d of %d\n", failed, summary.requests))
  io.write(string.format("RESULT p50=%.1fms p99=%.1fms rps=%.1f\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests / (summary.duration / 1e6)))
end
