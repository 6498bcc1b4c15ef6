-- wrk script of bench/intake_load.py: posts a prepared sequence of webhook requests, optionally at a
-- constant rate (wrk2-style schedule), and reports status counts and the call ids answered 200.
--
-- wrk -t THREADS -s bench/intake_load.lua URL -- REQUESTS_FILE RATE LIMIT THREADS
--   REQUESTS_FILE  one request a line: "path<TAB>content-type<TAB>body" ("-" = no content type)
--   RATE           requests/s over all threads; 0 = as fast as the connections go
--   LIMIT          requests in all (0 = no limit: the sequence wraps, so late valid ones are redeliveries)
--   THREADS        wrk's -t again (a thread's setup does not know how many follow)
-- The figures go to the file named by $CRM_SYNC_LOAD_OUT: a JSON line, then "status<TAB>code<TAB>n" and
-- "accepted<TAB>call_id" lines.
--
-- Each thread sends the lines whose index is its own modulo the thread count. At a constant rate each
-- thread claims send slots 1/rate*threads apart from its start; a connection waits for its slot (when
-- every connection is busy the slot is late: the run then reports a lower achieved rate).

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } crm_timespec;
  int clock_gettime(int clk_id, crm_timespec *tp);
]]
local ts = ffi.new("crm_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  local file, rate, limit = args[1], tonumber(args[2] or "0"), tonumber(args[3] or "0")
  nthreads_total = tonumber(args[4] or "1")
  requests = {}
  local index = 0
  for line in io.lines(file) do
    if index % nthreads_total == id then
      local path, ctype, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = {}
      if ctype ~= "-" then headers["Content-Type"] = ctype end
      table.insert(requests, wrk.format("POST", path, headers, body))
    end
    index = index + 1
  end
  next_request = 1
  sent = 0
  quota = -1
  if limit > 0 then
    quota = math.floor(limit / nthreads_total) + ((id < limit % nthreads_total) and 1 or 0)
  end
  interval = 0
  if rate > 0 then interval = 1000 * nthreads_total / rate end
  next_slot = now_ms()
  first_ms = next_slot
  last_ms = next_slot
  statuses = {}
  accepted = {}
  accepted_n = 0
end

function delay()
  if quota >= 0 and sent >= quota then return 3600000 end -- done: idle until wrk stops
  if sent == 0 then first_ms = now_ms() end
  sent = sent + 1
  if interval == 0 then return 0 end
  local slot = next_slot
  next_slot = next_slot + interval
  local wait = slot - now_ms()
  if wait < 0 then return 0 end
  return math.floor(wait)
end

function request()
  local req = requests[next_request]
  next_request = next_request + 1
  if next_request > #requests then next_request = 1 end
  return req
end

function response(status, headers, body)
  last_ms = now_ms()
  statuses[status] = (statuses[status] or 0) + 1
  if status == 200 then
    local call_id = body:match('"call_id":"([^"]*)"')
    if call_id then
      accepted_n = accepted_n + 1
      accepted[accepted_n] = call_id
    end
  end
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("CRM_SYNC_LOAD_OUT"), "w")
  local e = summary.errors
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d}, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
  local first, last = nil, nil
  for _, thread in ipairs(threads) do
    local f, l = thread:get("first_ms"), thread:get("last_ms")
    if first == nil or f < first then first = f end
    if last == nil or l > last then last = l end
    for status, n in pairs(thread:get("statuses")) do
      out:write(string.format("status\t%d\t%d\n", status, n))
    end
    local ids = thread:get("accepted")
    for i = 1, #ids do out:write("accepted\t", ids[i], "\n") end
  end
  if first ~= nil then out:write(string.format("span_ms\t%.3f\n", last - first)) end
  out:close()
end
