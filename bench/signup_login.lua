-- wrk script: half the requests sign up a fresh account, half sign in to
-- one this thread signed up LAG signups earlier (so its signup has long
-- been answered: a thread has at most a few requests in flight). Every
-- answer's body is checked, not just its status.
wrk.method = "POST"
wrk.path = "/graphql"
wrk.headers["Content-Type"] = "application/json"

local LAG = 32
local version = os.getenv("POLICY_VERSION") or "2026-11-01"
local counter, signups, logins = 0, 0, 0
failures = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local function name(n) return string.format("load_%d_%d", id, n) end

-- wrk calls request() once on thread 0 before sending anything, only to
-- count pipelined requests (script_verify_request in wrk.c); that body is
-- never sent, so it must not consume a signup.
local verified = false

function request()
  if id == 0 and not verified then
    verified = true
    return wrk.format(nil, nil, nil, '{"query":"{ __typename }"}')
  end
  counter = counter + 1
  local body
  if signups <= LAG or counter % 2 == 1 then
    signups = signups + 1
    body = string.format('{"query":"mutation($i: SignupInput!) { signup(input: $i) { accepted } }","variables":{"i":{"username":"%s","email":"%s@example.org","password":"a load test passphrase","acceptPolicyVersion":"%s","age":"ADULT"}}}', name(signups), name(signups), version)
  else
    logins = logins + 1
    body = string.format('{"query":"mutation { login(input: { login: \\"%s\\", password: \\"a load test passphrase\\" }) { token } }"}', name(logins))
  end
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status ~= 200 or not (body:find('"accepted":true', 1, true) or body:find('"token":"', 1, true)) then
    failures = failures + 1
    if failures <= 3 then io.stderr:write(string.format("bad answer (thread %d, signups %d, logins %d): %d %s\n", id, signups, logins, status, body:sub(1, 200))) end
  end
end

function done(summary, latency, requests)
  local failed = 0
  for _, t in ipairs(threads) do failed = failed + t:get("failures") end
  io.write(string.format("CHECK bad answers: %d of %d\n", failed, summary.requests))
  io.write(string.format("RESULT p50=%.1fms p99=%.1fms rps=%.1f\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests / (summary.duration / 1e6)))
end
