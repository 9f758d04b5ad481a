-- wrk script for the HTTP benchmark: replays the request mix bench/http_load.py wrote to BENCH_REQUESTS_FILE
-- (one request a line: kind, method, path, body, tab-separated), each thread from its own starting point,
-- and prints one line of JSON at the end for bench/http_load.py to read.

local requests = {}
local position = 0
local thread_number = 0
-- BENCH_DELAY_MS: each connection waits a random time of this mean before each request (a paced load: about
-- connections / mean requests a second) instead of sending the next one as soon as an answer comes back (the
-- saturating load). Exponential waits make the arrivals a Poisson stream, as independent clients' are; equal
-- waits would keep the connections in step, firing all together in bursts.
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if delay_ms and delay_ms > 0 then
  function delay()
    return -math.log(1 - math.random()) * delay_ms
  end
end

function setup(thread)
  thread_number = thread_number + 1
  thread:set("start", thread_number * 7919)
end

function init(args)
  for line in io.lines(os.getenv("BENCH_REQUESTS_FILE")) do
    local kind, method, path, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t?(.*)$")
    if method then
      table.insert(requests, {method = method, path = path, body = body})
    end
  end
  position = (start or 0) % #requests
  math.randomseed(start or 0)
end

function request()
  position = position % #requests + 1
  local next_request = requests[position]
  if next_request.method == "POST" then
    return wrk.format("POST", next_request.path, {["Content-Type"] = "application/json"}, next_request.body)
  end
  return wrk.format("GET", next_request.path)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "errors_connect": %d, "errors_read": %d, "errors_write": %d, '
    .. '"errors_status": %d, "errors_timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
