-- wrk script: random Range GETs of RANGE_BYTES, aligned, over a file of FILE_BYTES.
--   wrk -t T -c C -d Ds -s range.lua http://host:port -- PATH_AND_QUERY RANGE_BYTES FILE_BYTES
-- No response() callback: defining one makes wrk copy every body into Lua, and the copying
-- would then be what is measured. Statuses >= 400 are counted by wrk (summary.errors.status);
-- the bench checks 206 and Content-Range before the load, and bytes per request after it.
local path, range_bytes, slots
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_id", thread_count)
end

function init(args)
  path = args[1]
  range_bytes = tonumber(args[2])
  slots = math.floor(tonumber(args[3]) / range_bytes)
  math.randomseed(os.time() * 1000 + (thread_id or 0))
end

function request()
  local start = math.random(0, slots - 1) * range_bytes
  return wrk.format("GET", path, { Range = "bytes=" .. start .. "-" .. (start + range_bytes - 1) })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'PF_WRK {"requests":%d,"bytes":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
