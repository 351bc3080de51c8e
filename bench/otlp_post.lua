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

-- `n` big-endian bytes of `x` (below 2^53: Lua numbers are doubles, so a larger one has lost its low
-- bits, and the counter with them).
local function be(x, n)
  local out = {}
  for i = n, 1, -1 do
    out[i] = string.char(x % 256)
    x = math.floor(x / 256)
  end
  return table.concat(out)
end

function request()
  counter = counter + 1
  local body = bodies[(counter - 1) % #bodies + 1]
  -- Two bytes of the run's salt, then six of the counter. (One sum `salt * 2^48 + counter` exceeded
  -- 2^53 for salts from 32 up, and rounded the counter to multiples of up to 1,024: from salt 8,192 up,
  -- about 40% of a run's requests repeated an earlier one's traces, which the store skips.)
  local prefix = be(thread_id % 65536, 2) .. be(counter, 6)
  -- A function's result replaces literally; a replacement string would read a "%" byte of the prefix
  -- as an escape (one byte lost, a malformed request: 256 in a row, once the rounded counter's second
  -- byte reached 0x25).
  body = body:gsub(marker, function() return prefix end)
  return wrk.format("POST", "/v1/traces", {["Content-Type"] = "application/x-protobuf"}, body)
end
