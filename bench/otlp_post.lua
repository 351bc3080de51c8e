-- wrk script: POSTs pre-built OTLP protobuf batches in turn. Every batch's
-- trace ids begin with the 8-byte marker below; each request overwrites
-- them with a fresh counter, so every request carries new traces.
--
-- The generator has to cost the load far less than the servers it loads:
-- wrk runs one thread, and a script that rebuilt each 58 KB body with
-- `string.gsub` spent about 0.55 ms of CPU a request, a whole core at
-- 1,800 requests a second, so that wrk, not the server, set the rate.
-- Each body is kept in a LuaJIT FFI buffer instead, with the offsets of its
-- markers found once, and a request writes 8 bytes at each offset and makes
-- one string of the buffer (about 0.05 ms a request).
local ok, ffi = pcall(require, "ffi")
if not ok then
  error("bench/otlp_post.lua needs wrk built with LuaJIT (its FFI); this wrk has plain Lua")
end

local marker = string.rep("\171", 8)
local bodies = {}
local counter = 0
local thread_id = 0
local prefix = ffi.new("uint8_t[8]")

function init(args)
  local dir, n = args[1], tonumber(args[2])
  thread_id = tonumber(args[3] or "0")
  for i = 1, n do
    local f = assert(io.open(dir .. "/" .. i .. ".pb", "rb"))
    local bytes = f:read("*all")
    f:close()
    local offsets, from = {}, 1
    while true do
      local at = string.find(bytes, marker, from, true)
      if not at then
        break
      end
      offsets[#offsets + 1] = at - 1
      from = at + #marker
    end
    local buf = ffi.new("uint8_t[?]", #bytes)
    ffi.copy(buf, bytes, #bytes)
    bodies[i] = { buf = buf, len = #bytes, offsets = offsets }
  end
end

-- The prefix: two bytes of the run's salt, then six of the counter, big-endian
-- (Lua numbers are doubles: exact below 2^53, which six bytes stay under).
local function set_prefix(salt, n)
  prefix[0] = math.floor(salt / 256) % 256
  prefix[1] = salt % 256
  for i = 7, 2, -1 do
    prefix[i] = n % 256
    n = math.floor(n / 256)
  end
end

function request()
  counter = counter + 1
  local body = bodies[(counter - 1) % #bodies + 1]
  set_prefix(thread_id % 65536, counter)
  for _, at in ipairs(body.offsets) do
    ffi.copy(body.buf + at, prefix, 8)
  end
  return wrk.format("POST", "/v1/traces", { ["Content-Type"] = "application/x-protobuf" },
    ffi.string(body.buf, body.len))
end
