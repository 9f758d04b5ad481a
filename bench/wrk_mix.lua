-- wrk script for the HTTP benchmark: replays the request mix bench/http_load.py wrote to BENCH_REQUESTS_FILE
-- (one request a line: kind, method, path, body, tab-separated), each thread from its own starting point,
-- and prints one line of JSON at the end for bench/http_load.py to read.
-- BENCH_TALLY_HEADER (optional, e.g. X-Served-From): also count the answers by that header's value, every thread's
-- counts summed into the JSON line's "tally" (values other than those in BENCH_TALLY_VALUES count as "other", answers
-- without the header as "none"). Off by default: reading headers costs wrk a little CPU on every answer.

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

local tally_header = os.getenv("BENCH_TALLY_HEADER") or ""
local tally_values = {}
for value in (os.getenv("BENCH_TALLY_VALUES") or "candidates,live"):gmatch("[^,]+") do
  table.insert(tally_values, value)
end
local threads = {}
if tally_header ~= "" then
  local lower_header = tally_header:lower()
  tally = {}  -- per thread (each thread has its own copy of this script), read back in done()
  function response(status, headers, body)
    local value = headers[tally_header] or headers[lower_header] or "none"
    tally[value] = (tally[value] or 0) + 1
  end
end

function setup(thread)
  table.insert(threads, thread)
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

function tally_json()
  local counts = {none = 0, other = 0}
  for _, value in ipairs(tally_values) do counts[value] = 0 end
  for _, thread in ipairs(threads) do
    local thread_tally = thread:get("tally") or {}
    for value, count in pairs(thread_tally) do
      local key = counts[value] ~= nil and value or "other"
      counts[key] = counts[key] + count
    end
  end
  local fields = {}
  for value, count in pairs(counts) do
    table.insert(fields, string.format('"%s": %d', value:gsub('[^%w_-]', ''), count))
  end
  table.sort(fields)
  return string.format(', "tally_header": "%s", "tally": {%s}', tally_header:gsub('[^%w_-]', ''),
                       table.concat(fields, ", "))
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "errors_connect": %d, "errors_read": %d, "errors_write": %d, '
    .. '"errors_status": %d, "errors_timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d%s}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, tally_header ~= "" and tally_json() or ""))
end
