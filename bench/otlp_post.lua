-- wrk script: POSTs pre-built OTLP protobuf batches in turn. Every batch's
-- trace ids begin with the 8-byte marker below; each request replaces it
-- with a fresh counter, so every request carries new traces.
local bodies = {}
local marker = string.rep("\171", 8)
local counter = 0
local thread_id = 0

function init(args)
  local dir, n = args[1], tonumber(args[2])
  thread_id = tonumber(args[3] or "0")
  for i = 1, n do
    local f = assert(io.open(dir .. "/" .. i .. ".pb", "rb"))
    bodies[i] = f:read("*all")
    f:close()
  end
end

local function be64(x)
  local out = {}
  for i = 8, 1, -1 do
    out[i] = string.char(x % 256)
    x = math.floor(x / 256)
  end
  return table.concat(out)
end

function request()
  counter = counter + 1
  local body = bodies[(counter - 1) % #bodies + 1]
  -- Top byte: the run's salt (wrk.thread id and time), then the counter.
  local prefix = be64(thread_id * 2^48 + counter)
  body = body:gsub(marker, prefix)
  return wrk.format("POST", "/v1/traces", {["Content-Type"] = "application/x-protobuf"}, body)
end
