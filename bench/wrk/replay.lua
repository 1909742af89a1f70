-- Replays a prepared list of requests through wrk, each exactly once, and records each
-- request's latency; used by bench/wrk_client.py (which writes the lists and reads the output).
--
--   wrk -t N -c N -d <cap> -s replay.lua <url> -- <prefix>
--
-- One connection per wrk thread, so that in a thread's Lua state request() and response()
-- alternate and a latency is the time between the two. Thread i sends the raw HTTP requests
-- of the file <prefix><i>.req (records "<byte count>\n<bytes>"), prints "liucun-wrk done"
-- once its last response is in and stops; wrk itself only stops at -d or on SIGINT, which the
-- caller sends when every thread is done. done() then prints, per thread, a parseable line
--   liucun-wrk thread <sent> <received> <non-2xx> <first request µs> <last response µs>
--   TAB <latencies in µs, space-separated> TAB <first non-2xx: status and body>
-- and "liucun-wrk errors <connect> <read> <write>" (wrk's socket errors).
-- Latencies are measured here rather than taken from wrk's histogram: wrk "corrects" that
-- histogram for coordinated omission (adds synthetic samples for slow responses) before done()
-- sees it, so its percentiles are not those of the requests actually sent.

local ffi = require("ffi")
ffi.cdef([[
  typedef struct { long tv_sec; long tv_nsec; } liucun_timespec;
  int clock_gettime(int clock, liucun_timespec *ts);
]])
local CLOCK_MONOTONIC = 1 -- shared by every process, so the caller can compare wrk processes
local ts = ffi.new("liucun_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

-- main state: number the threads (setup runs before each thread's init)
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  threads[#threads + 1] = thread
end

-- thread state
-- (globals are what the main state can read with thread:get in done())
local requests = {}
latencies, sent, received, failed, first, last, failure = {}, 0, 0, 0, 0, 0, ""
local began, verifying

function init(args)
  local f = assert(io.open(args[1] .. id .. ".req", "rb"))
  while true do
    local size = f:read("*l")
    if not size then
      break
    end
    requests[#requests + 1] = f:read(tonumber(size))
  end
  f:close()
  -- wrk calls request() once on its first thread before the run, only to parse the request
  -- (script_verify_request); that call must not use up a request
  verifying = id == 0
end

function request()
  if verifying then
    verifying = false
    return requests[1]
  end
  if sent == #requests then
    return "" -- share done (the thread is stopping): send nothing more
  end
  sent = sent + 1
  began = now_us()
  if sent == 1 then
    first = began
  end
  return requests[sent]
end

function response(status, headers, body)
  last = now_us()
  received = received + 1
  latencies[received] = last - began
  if status < 200 or status >= 300 then
    failed = failed + 1
    if failure == "" then
      failure = status .. " " .. body:sub(1, 200):gsub("%s", " ")
    end
  end
  if received == #requests then
    io.stdout:write("liucun-wrk done\n")
    io.stdout:flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests_stats)
  local out = {}
  for _, t in ipairs(threads) do
    out[#out + 1] = string.format(
      "liucun-wrk thread %d %d %d %.0f %.0f\t%s\t%s\n",
      t:get("sent"), t:get("received"), t:get("failed"), t:get("first"), t:get("last"),
      table.concat(t:get("latencies"), " "), t:get("failure")
    )
  end
  local e = summary.errors
  out[#out + 1] = string.format("liucun-wrk errors %d %d %d\n", e.connect, e.read, e.write)
  io.stdout:write(table.concat(out))
  io.stdout:flush()
end
