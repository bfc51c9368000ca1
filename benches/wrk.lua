-- The wrk script of scripts/bench, steered by environment variables so one script serves every
-- scenario, for graphsec and the ceiling alike (both get the same requests and headers):
--   TOKEN   bearer token sent on every request (the ceiling ignores it)
--   METHOD  GET (default), POST or PATCH
--   BODY    request body (sent with Content-Type: application/json)
--   IDS     file of ids, one per line: each request goes to <url path>/<random id>
wrk.method = os.getenv("METHOD") or "GET"
local token = os.getenv("TOKEN")
if token then
  wrk.headers["Authorization"] = "Bearer " .. token
end
local body = os.getenv("BODY")
if body then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

local ids_file = os.getenv("IDS")
if ids_file then
  local ids = {}
  for line in io.lines(ids_file) do
    ids[#ids + 1] = line
  end
  local threads = 0
  setup = function(thread)
    threads = threads + 1
    thread:set("seed", threads)
  end
  init = function(args)
    -- Each wrk thread has its own Lua state: give each its own id sequence.
    math.randomseed(os.time() * 100 + (seed or 0))
  end
  request = function()
    return wrk.format(nil, wrk.path .. "/" .. ids[math.random(#ids)])
  end
end
